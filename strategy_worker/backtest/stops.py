"""A position's working stop along one bar's path, by the live protection rules (``shared/trading/protection.py``,
carried out live by ``execution_worker/protector.py``): the SL triggers; or the price reaches the target first and
the SL becomes a LIMIT there (``target_actions``), filled once the price trades through it; or, while that LIMIT
waits, the price comes back to the stop (``stop_returned``) and the LIMIT moves to the stop's own limit
(``stopped_actions``), filled from there as the triggered SL would be. A triggered stop the market ran past is
moved through it (``chase``), as the live protector does, and fills at the market where it triggered."""

from __future__ import annotations

from collections.abc import Callable

from shared.fills import BarFills, trigger_hit
from shared.kite.models import Instrument
from shared.messages import OrderType
from shared.trading.order import Order
from shared.trading.planning import tick_paise
from shared.trading.protection import (
    Modify,
    Protection,
    chase_limit,
    stopped_actions,
    target_actions,
)

Hit = tuple[int, int]  # (index in the path, fill price)


def walk(fills: BarFills, o: Order, p: Protection, path: tuple[int, ...], inst: Instrument,
         band: tuple[int, int] | None, slippage_pct: float, modify: Callable[[Modify], None]) -> Hit | None:
    """Where the position's stop order ``o`` fills along ``path``, or None; on the way it is modified (``modify``)
    as the live protector would modify it, and ``p.mode`` follows."""
    side, tick = o.transaction_type.value, tick_paise(inst)
    start = 0
    if o.order_type == "SL":
        hit = fills.stop(side, o.trigger_price, o.price, path, tick, band=band)
        at = hit or triggered(side, o.trigger_price, path)  # where the stop fills, or triggers and cannot
        reach = _reached(p.target, path, rise=side == "SELL") if p.mode == "stop" and p.target else None
        if reach is None or (at is not None and at[0] < reach):
            return hit or chase(fills, o, at, inst, band, modify)
        p.mode = "target"  # the target first: the SL becomes a LIMIT there
        for m in target_actions(p, [o], inst):
            modify(m)
        start = reach
    if p.mode != "target":  # a LIMIT left by the stop, or by the stop's return
        return fills.limit(side, o.price, path, tick)
    rest = path[start:]
    hit = fills.limit(side, o.price, rest, tick)
    back = _reached(p.stop, rest, rise=side == "BUY") if p.stop else None
    if back is not None and (hit is None or back < hit[0]):
        p.mode = "stopped"  # back at the stop before the target's LIMIT filled: it exits at the stop
        for m in stopped_actions(p, 1 if side == "SELL" else -1, [o], inst, slippage_pct):
            modify(m)
        hit = fills.stop(side, p.stop, o.price, rest, tick, band=band) or \
            chase(fills, o, triggered(side, p.stop, rest), inst, band, modify)
    return None if hit is None else (start + hit[0], hit[1])


def chase(fills: BarFills, o: Order, at: Hit | None, inst: Instrument, band: tuple[int, int] | None,
          modify: Callable[[Modify], None]) -> Hit | None:
    """The stop ``o`` triggered at ``at`` (index, price) and the market is past its LIMIT (the fill model left it
    unfilled): the live protector moves it through the last price at the next tick (``protection.chase_limit``,
    ``execution_worker/tick_watch._chase``), so it fills at the market there — a gap: at the open."""
    if at is None:
        return None
    modify(Modify(o, order_type=OrderType.LIMIT.value, price=chase_limit(o.transaction_type, at[1], inst)))
    return at[0], fills.market(o.transaction_type.value, at[1], tick_paise(inst), band=band)


def triggered(side: str, trigger: int, path: tuple[int, ...]) -> Hit | None:
    """(index, price) where a stop's trigger is first reached along ``path`` (the open when it gapped through)."""
    if trigger_hit(side, trigger, path[0]):
        return 0, path[0]
    for i in range(1, len(path)):
        if min(path[i - 1], path[i]) <= trigger <= max(path[i - 1], path[i]):
            return i, trigger
    return None


def wake_levels(o: Order, p: Protection, slip: int) -> tuple[int, int]:
    """(a price at or below which, a price at or above which) the order ``o`` of ``p`` may act; 0 / -1 none."""
    sell = o.transaction_type.value == "SELL"
    low, high = 0, -1
    if o.order_type == "SL":  # a sell stop waits for the price to fall to it, a buy stop to rise
        low, high = (o.trigger_price, -1) if sell else (0, o.trigger_price)
        if p.mode == "stop" and p.target:  # the target, on the other side
            low, high = (low, p.target) if sell else (p.target, high)
    else:  # a LIMIT waits for the price to trade through it
        low, high = (0, o.price + slip) if sell else (o.price - slip, -1)
        if p.mode == "target" and p.stop:  # the stop, still protecting, on the other side
            low, high = (p.stop, high) if sell else (low, p.stop)
    return low, high


def _reached(level: int, path: tuple[int, ...], rise: bool) -> int | None:
    """Where along ``path`` the price first reaches ``level`` (from below when ``rise``)."""
    for i, price in enumerate(path):
        if (price >= level) if rise else (price <= level):
            return i
    return None
