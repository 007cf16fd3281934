"""Net option greeks per underlying, for the risk caps on delta and vega: what is held (from kta's
position book) and what a signal adds, priced with Black-Scholes at each option's implied
volatility from its last price. Delta is in units of the underlying, vega in rupees per vol point.

One ``ltp`` call per option signal (spot and every option involved); exits skip it, since the caps
only refuse what grows the exposure."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from shared.trading.positions import net_by_symbol
from shared.kite import errors
from shared.kite.client import KiteClient
from shared.kite.models import Instrument
from shared.messages import Position
from shared.options.chain import years_to_expiry
from shared.options.iv import IVError, implied_vol_bs
from shared.options.pricing import greeks_bs

log = logging.getLogger("kta.greeks")
RATE = 0.065  # risk-free rate for the pricing model (India 91-day T-bill, roughly)
SPOT = {"NIFTY": "NSE:NIFTY 50", "BANKNIFTY": "NSE:NIFTY BANK", "FINNIFTY": "NSE:NIFTY FIN SERVICE",
        "MIDCPNIFTY": "NSE:NIFTY MID SELECT", "SENSEX": "BSE:SENSEX", "BANKEX": "BSE:BANKEX"}
Greeks = tuple[float, float]  # (delta, vega)


def spot_key(underlying: str) -> str:
    return SPOT.get(underlying, f"NSE:{underlying}")


def is_option(inst: Instrument | None) -> bool:
    return inst is not None and inst.instrument_type in ("CE", "PE") and inst.expiry is not None


def unit_greeks(inst: Instrument, spot: float, price: float, now: float) -> Greeks:
    """Delta and vega of one unit of ``inst`` (vega per vol point, in rupees)."""
    flag = "c" if inst.instrument_type == "CE" else "p"
    years = years_to_expiry(inst.expiry, now)
    try:
        vol = implied_vol_bs(price, flag, spot, inst.strike, years, RATE)
    except IVError:  # expired, or a price outside the model's bounds: intrinsic delta, no vega
        vol = 0.0
    g = greeks_bs(flag, spot, inst.strike, years, RATE, vol)
    return g.delta, g.vega


def position_greeks(lines: Iterable[tuple[Instrument, int]], spot: float, prices: dict[str, float],
                    now: float) -> Greeks:
    """Sum over (option, signed quantity) of quantity × unit greeks."""
    delta = vega = 0.0
    for inst, qty in lines:
        price = prices.get(f"{inst.exchange}:{inst.tradingsymbol}")
        if not qty or not price:
            continue
        d, v = unit_greeks(inst, spot, price, now)
        delta, vega = delta + qty * d, vega + qty * v
    return delta, vega


async def net_greeks(client: KiteClient, instruments: dict[str, Instrument], held: Iterable[Position],
                     adding: list[tuple[str, int]], now: float | None = None) -> tuple[str, dict[str, Greeks], Greeks]:
    """(underlying, {underlying: greeks held now}, greeks the signal adds) for a signal whose option
    legs are ``adding`` ("EXCHANGE:SYMBOL", signed quantity). ("", {}, (0, 0)) without options; the
    quote failing leaves the caps unchecked (logged), it never blocks trading on its own."""
    legs = [(instruments.get(key), qty) for key, qty in adding]
    legs = [(inst, qty) for inst, qty in legs if is_option(inst)]
    if not legs:
        return "", {}, (0.0, 0.0)
    underlying = legs[0][0].name
    book = [(instruments.get(f"{ex}:{sym}"), qty) for (ex, sym), qty in net_by_symbol(held).items()]
    book = [(inst, qty) for inst, qty in book if is_option(inst) and inst.name == underlying and qty]
    keys = {f"{inst.exchange}:{inst.tradingsymbol}" for inst, _ in legs + book} | {spot_key(underlying)}
    try:
        quotes = await client.ltp(*sorted(keys))
    except errors.KiteError as e:
        log.warning("greeks of %s unchecked: %s", underlying, e)
        return underlying, {}, (0.0, 0.0)
    prices = {k: q.last_price for k, q in quotes.items()}
    spot = prices.get(spot_key(underlying))
    if not spot:
        log.warning("greeks of %s unchecked: no spot price", underlying)
        return underlying, {}, (0.0, 0.0)
    now = time.time() if now is None else now
    return underlying, {underlying: position_greeks(book, spot, prices, now)}, position_greeks(legs, spot, prices, now)
