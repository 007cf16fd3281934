"""The option tools on the trading facade (``Trading`` inherits them): the greeks and payoff of the open
option book per underlying — the whole account's, or one strategy's structure from the journal — and a
what-if payoff of any of the option strategies' structures laid on today's chain."""

from __future__ import annotations

from gateway.option_book import Leg, book_greeks, payoff
from gateway.option_chain import market_now, underlying_name
from gateway.payoff_svg import payoff_svg
from gateway.structures import StructureError, build
from gateway.trading_error import TradingError
from shared.trading.greeks import spot_key

DERIVATIVES = ("NFO", "BFO")


class OptionDesk:
    """Mixed into Trading; ``self`` provides positions, strategy_pnl, option_chain, instruments, broker."""

    def _leg(self, exchange: str, symbol: str, quantity: int, entry_paise: int, last_paise: int,
             strategy: str = "") -> tuple[str, Leg] | None:
        inst = self.instruments.find(f"{exchange}:{symbol}")
        if inst is None or exchange not in DERIVATIVES or not quantity:
            return None
        return inst.name, Leg(tradingsymbol=symbol, kind=inst.instrument_type, quantity=quantity,
                              entry=entry_paise / 100, last=(last_paise or entry_paise) / 100, strike=inst.strike,
                              expiry=inst.expiry, strategy=strategy)

    async def option_book(self, user_id: str, strategy: str = "") -> dict:
        """``{"underlyings": [{"underlying", "spot", "market_time", "greeks", "payoff", "svg"}], "strategies"}``
        for the account's open F&O positions (the broker's), or one strategy's (the journal's)."""
        await self._instrument_list(user_id)
        pnl = await self.strategy_pnl(user_id)
        held_by_strategy = {r["strategy"]: r["positions"] for r in pnl["strategies"] if r["strategy"] != "total"}
        option_strategies = sorted(name for name, held in held_by_strategy.items()
                                   if any(p["exchange"] in DERIVATIVES for p in held))
        lines: list[tuple[str, Leg]] = []
        if strategy:  # one strategy's structure (none open: an empty book)
            for p in held_by_strategy.get(strategy, []):
                line = self._leg(p["exchange"], p["tradingsymbol"], p["quantity"], p["average_price"],
                                 p["last_price"], strategy)
                lines += [line] if line else []
        else:
            for p in (await self.positions(user_id)).get("positions", []):
                line = self._leg(p["exchange"], p["tradingsymbol"], p["quantity"], p["average_price"],
                                 p["last_price"])
                lines += [line] if line else []
        out = []
        for name in sorted({n for n, _ in lines}):
            legs = [leg for n, leg in lines if n == name]
            spot, now = await self._spot(user_id, name)
            curve = payoff(legs, spot, now)
            out.append({"underlying": name, "spot": spot, "market_time": now, "greeks": book_greeks(legs, spot, now),
                        "payoff": curve, "svg": payoff_svg(curve)})
        return {"underlyings": out, "strategies": option_strategies, "strategy": strategy}

    async def structure_payoff(self, user_id: str, underlying: str, structure: str, expiry: str = "",
                               lots: int = 1, steps: int = 2, wing: int = 2) -> dict:
        """One of the option strategies' structures on today's chain: its legs, greeks and payoff."""
        chain = await self.option_chain(user_id, underlying, expiry)
        try:
            legs = build(chain, structure, lots, steps, wing)
        except StructureError as e:
            raise TradingError(400, str(e), e.field, "bad_request") from None
        spot, now = await self._spot(user_id, chain["underlying"])
        curve = payoff(legs, spot, now)
        return {"underlying": chain["underlying"], "expiry": chain["expiry"], "structure": structure, "spot": spot,
                "legs": [vars(leg) | {"expiry": leg.expiry.isoformat() if leg.expiry else ""} for leg in legs],
                "premium": round(-sum(leg.quantity * leg.entry for leg in legs), 2),
                "greeks": book_greeks(legs, spot, now), "payoff": curve, "svg": payoff_svg(curve)}

    async def _spot(self, user_id: str, name: str) -> tuple[float, float]:
        """(the underlying's last price, the exchange's clock) from one quote."""
        key = spot_key(underlying_name(name))
        quote = (await self.broker(user_id, "quote", key)).get(key) or {}
        if not quote.get("last_price"):
            raise TradingError(502, f"no quote for {key}", "underlying", "broker_error")
        return float(quote["last_price"]), market_now(quote.get("timestamp"))
