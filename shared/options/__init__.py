"""Option analytics: pricing and greeks (Black-Scholes, Black-76), implied volatility, chains, OI."""
