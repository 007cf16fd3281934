"""An option chain as the dashboard shows it: strikes around ATM with CE/PE bid, ask, LTP, IV, delta
and OI, and the put-call ratio. Built from strategy_worker's own chain, IV, pricing and OI code.

"Now" is the exchange's clock (the spot quote's timestamp), not this machine's: the nearest expiry
is the first one whose 15:30 IST close is still ahead of the market, so a paper market running ahead
of the wall clock (or a server in another time zone) never defaults to an expired chain."""

from __future__ import annotations

import time
from datetime import date, datetime

from shared.ist import IST
from shared.kite.client import KiteClient
from shared.kite.models import Instrument
from shared.options.chain import RATE, build_chains, years_to_expiry
from shared.options.iv import IVError, implied_vol_black76
from shared.options.oi import OITracker
from shared.options.pricing import greeks_black76

STRIKES_EACH_SIDE = 12
# Derivative "name" -> the spot instrument the exchange quotes for it.
INDEX_SPOT = {"NIFTY": "NSE:NIFTY 50", "BANKNIFTY": "NSE:NIFTY BANK", "FINNIFTY": "NSE:NIFTY FIN SERVICE",
              "MIDCPNIFTY": "NSE:NIFTY MID SELECT", "SENSEX": "BSE:SENSEX", "BANKEX": "BSE:BANKEX"}


class ChainError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def underlying_name(underlying: str) -> str:
    """Accept "NIFTY", "NIFTY 50" or "NSE:NIFTY 50"; return the derivatives' name column (NIFTY)."""
    u = underlying.strip().upper()
    for name, spot in INDEX_SPOT.items():
        if u in (spot, spot.split(":", 1)[1]):
            return name
    return u.split(":", 1)[1] if ":" in u else u


def _leg(inst: Instrument | None, quotes: dict, forward: float, t: float) -> dict | None:
    if inst is None:
        return None
    q = quotes.get(inst.instrument_token)
    ltp = q.last_price if q else 0.0
    flag = "c" if inst.instrument_type == "CE" else "p"
    bid = q.depth.buy[0].price if q and q.depth.buy and q.depth.buy[0].quantity else None
    ask = q.depth.sell[0].price if q and q.depth.sell and q.depth.sell[0].quantity else None
    iv = None
    if ltp > 0 and t > 0:
        try:
            iv = implied_vol_black76(ltp, flag, forward, inst.strike, t, RATE)
        except IVError:
            iv = None
    delta = greeks_black76(flag, forward, inst.strike, max(t, 1e-6), RATE, iv or 0.15).delta if forward else None
    return {"instrument_token": inst.instrument_token, "tradingsymbol": inst.tradingsymbol, "ltp": ltp,
            "bid": bid, "ask": ask, "lower_circuit": q.lower_circuit_limit if q else None,
            "upper_circuit": q.upper_circuit_limit if q else None,
            "iv": round(iv * 100, 2) if iv else None, "delta": round(delta, 4) if delta is not None else None,
            "oi": int(q.oi) if q else 0}


def market_now(quote_timestamp: str | None) -> float:
    """Epoch seconds of the exchange's clock from a quote's IST ``yyyy-mm-dd hh:mm:ss``; this machine's
    clock when the quote has none."""
    if quote_timestamp:
        try:
            return datetime.fromisoformat(quote_timestamp).replace(tzinfo=IST).timestamp()
        except ValueError:
            pass
    return time.time()


def live_expiries(expiries: list[date], now: float) -> list[date]:
    """The expiries still trading at ``now`` (their 15:30 IST close ahead), nearest first; the last one
    when every expiry is past."""
    return [e for e in sorted(expiries) if years_to_expiry(e, now) > 0] or [max(expiries)]


async def option_chain_view(client: KiteClient, instruments: list[Instrument], underlying: str,
                            expiry: date | None) -> dict:
    name = underlying_name(underlying)
    chains = build_chains(instruments, name)
    if not chains:
        raise ChainError("underlying", f"no options on {underlying!r}")
    spot_key = INDEX_SPOT.get(name, f"NSE:{name}")
    spot_quote = (await client.quote(spot_key)).get(spot_key)
    now = market_now(spot_quote.timestamp if spot_quote else None)
    live = live_expiries(list(chains), now)
    if expiry is None:
        expiry = live[0]
    elif expiry not in chains:
        raise ChainError("expiry", f"no {name} expiry on {expiry.isoformat()}; "
                                   f"expiries: {', '.join(e.isoformat() for e in sorted(chains))}")
    chain = chains[expiry]
    spot = spot_quote.last_price if spot_quote else chain.strikes[len(chain.strikes) // 2].strike
    atm = chain.strikes.index(chain.atm(spot))
    window = chain.strikes[max(0, atm - STRIKES_EACH_SIDE): atm + STRIKES_EACH_SIDE + 1]
    legs = [i for s in window for i in (s.ce, s.pe) if i is not None]
    raw = await client.quote(*(f"{i.exchange}:{i.tradingsymbol}" for i in legs)) if legs else {}
    quotes = {q.instrument_token: q for q in raw.values()}
    t = years_to_expiry(expiry, now)
    prices = {tok: q.last_price for tok, q in quotes.items() if q.last_price > 0}
    forward = chain.implied_future(spot, prices, now)
    oi = OITracker({i.instrument_token: (i.strike, i.instrument_type) for i in legs})
    for tok, q in quotes.items():
        oi.update(tok, int(q.oi))
    rows = [{"strike": s.strike, "atm": s is chain.strikes[atm], "ce": _leg(s.ce, quotes, forward, t),
             "pe": _leg(s.pe, quotes, forward, t)} for s in window]
    return {"underlying": name, "expiry": expiry.isoformat(), "expiries": [e.isoformat() for e in live],
            "market_time": datetime.fromtimestamp(now, IST).strftime("%Y-%m-%d %H:%M:%S"),
            "spot": spot, "forward": round(forward, 2), "lot_size": chain.lot_size,
            "pcr": round(oi.pcr, 3) if oi.pcr is not None else None, "max_pain": oi.max_pain(), "strikes": rows}
