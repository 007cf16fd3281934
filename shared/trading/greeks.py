"""Net option greeks per underlying, for the risk caps on delta and vega: what is held (from kta's
position book) and what a signal adds, priced with Black-Scholes at each option's implied
volatility from its last price. Delta is in units of the underlying, vega in rupees per vol point.

Pure: the caller prices the keys ``greeks_inputs`` names (spot and every option involved); a price
missing makes the result unpriced, and risk then refuses (fails closed) rather than trade blind."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from msgspec import Struct

from shared.kite.models import Instrument
from shared.messages import Position
from shared.trading.positions import net_by_symbol
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


class NetGreeks(Struct, frozen=True, kw_only=True):
    """``held``: {underlying: greeks of the options held now}; ``added``: what the signal adds;
    ``priced`` False when a price needed was missing (the caps then fail closed)."""

    underlying: str = ""
    held: dict[str, Greeks] = {}
    added: Greeks = (0.0, 0.0)
    priced: bool = True


def _option_lines(instruments: dict[str, Instrument], lines: Iterable[tuple[str, int]]) -> list[tuple[Instrument, int]]:
    found = [(instruments.get(key), qty) for key, qty in lines]
    return [(inst, qty) for inst, qty in found if is_option(inst) and qty]


def trades_options(instruments: dict[str, Instrument], lines: Iterable[tuple[str, int]]) -> bool:
    """Whether any of ``lines`` ("EXCHANGE:SYMBOL", signed quantity) adds to an option: only then are greeks judged."""
    return bool(_option_lines(instruments, lines))


def greeks_inputs(instruments: dict[str, Instrument], held: Iterable[Position],
                  adding: list[tuple[str, int]]) -> tuple[str, list[tuple[Instrument, int]],
                                                          list[tuple[Instrument, int]], list[str]]:
    """(underlying, option legs added, options of that underlying held, the keys to price) for a
    signal whose legs are ``adding`` ("EXCHANGE:SYMBOL", signed quantity); no underlying without options."""
    legs = _option_lines(instruments, adding)
    if not legs:
        return "", [], [], []
    underlying = legs[0][0].name
    book = [(inst, qty) for inst, qty in _option_lines(
        instruments, [(f"{ex}:{sym}", qty) for (ex, sym), qty in net_by_symbol(held).items()]) if inst.name == underlying]
    keys = {f"{inst.exchange}:{inst.tradingsymbol}" for inst, _ in legs + book} | {spot_key(underlying)}
    return underlying, legs, book, sorted(keys)


def net_greeks(instruments: dict[str, Instrument], held: Iterable[Position], adding: list[tuple[str, int]],
               prices: dict[str, int], now: float | None = None) -> NetGreeks:
    """Net greeks of the signal's underlying held now and what the signal adds, priced from
    ``prices`` (paise by "EXCHANGE:SYMBOL", the spot under ``spot_key``)."""
    underlying, legs, book, keys = greeks_inputs(instruments, held, adding)
    if not underlying:
        return NetGreeks()
    missing = [k for k in keys if not prices.get(k)]
    if missing:
        log.warning("greeks of %s unpriced: no price for %s", underlying, ", ".join(missing))
        return NetGreeks(underlying=underlying, priced=False)
    rupees = {k: prices[k] / 100 for k in keys}
    spot = rupees[spot_key(underlying)]
    now = time.time() if now is None else now
    return NetGreeks(underlying=underlying, held={underlying: position_greeks(book, spot, rupees, now)},
                     added=position_greeks(legs, spot, rupees, now))
