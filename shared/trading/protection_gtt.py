"""Protection of a CNC or NRML position, planned: one Kite GTT OCO at the broker (stop leg + target leg,
LIMIT orders priced through their triggers by the stop's slippage band so they fill), for exactly what
is held, from the entry's first fill on.

Why a GTT and not the day SL of ``shared.trading.protection``: a delivery or carry-forward position
outlives the session, and a day order expires at the close; a GTT lives at the broker until it fires
(a year, an F&O one until its contract expires), through the close, a kta crash and a restart on
another day. It is a trigger, not an order: nothing is margined and no CNC shares are sold until the
price reaches a leg, and then one leg places ONE order and the trigger ends (one cancels the other).
So at any moment a position has at most one resting exit at the broker: the GTT, or the order it
fired. The GTT is created from the entry's fill (not converted from an intraday SL at the close: a
conversion racing the close, or missed by a crash, would leave the night unprotected), modified when
the quantity changes, deleted when the position closes or an exit takes it over.

Kite refuses a trigger within 0.25 % of the last price (9 paise up to ₹50) and an OCO whose values do
not bracket it: a stop (or target) that close is moved out to the nearest value Kite accepts.
Pure: the execution worker carries the spec out (``execution_worker/gtt_keeper.py``)."""

from __future__ import annotations

import json

from shared.kite.models import Gtt, Instrument
from shared.messages import TransactionType, to_paise
from shared.trading import planning
from shared.trading.protection import GttSpec, Protection, desired, stop_limit  # noqa: F401 - GttSpec re-exported

PRODUCTS = frozenset({"CNC", "NRML"})
SINGLE, OCO = "single", "two-leg"
MIN_GAP_PCT = 0.25  # Kite: a trigger at least this far from the last price ...
MIN_GAP_PAISE = 9  # ... or 9 paise for prices up to ₹50


def uses_gtt(product: str) -> bool:
    """Whether a position of this product is protected by a GTT (else by a day SL order)."""
    return product in PRODUCTS


def min_gap(last_price: int) -> int:
    return MIN_GAP_PAISE if last_price <= 50_00 else -(-last_price * MIN_GAP_PCT // 100)


def specs(p: Protection, held: int, closing: int, last_price: int, inst: Instrument | None,
          slippage_pct: float) -> list[GttSpec]:
    """The GTTs for what ``held`` leaves open after ``closing``: one, or one per freeze slice (each fired
    order must be one Kite accepts); none when nothing is to be protected."""
    need = desired(held, closing)
    if not need or not p.stop or p.mode == "failed":
        return []
    sign = 1 if held > 0 else -1
    return [spec(p, sign * q, last_price, inst, slippage_pct)
            for q in planning.slices(need, planning.lot_of(inst), planning.freeze_of(inst))]


def spec(p: Protection, quantity: int, last_price: int, inst: Instrument | None, slippage_pct: float) -> GttSpec:
    """One GTT for ``quantity`` (signed: + a long's) of ``p``'s position, its triggers valid against ``last_price``."""
    long = quantity > 0
    side = TransactionType.SELL if long else TransactionType.BUY
    tick = planning.tick_paise(inst)
    gap = int(min_gap(last_price)) + tick if last_price > 0 else 0
    stop, target = p.stop, p.target
    if gap:  # outside Kite's band around the last price, on the right side of it
        stop = min(stop, last_price - gap) if long else max(stop, last_price + gap)
        if target:
            target = max(target, last_price + gap) if long else min(target, last_price - gap)
    stop = planning.round_to_tick(stop, tick, TransactionType.BUY if long else TransactionType.SELL)
    legs = [("stop_loss", stop)]
    if target:
        target = planning.round_to_tick(target, tick, TransactionType.SELL if long else TransactionType.BUY)
        legs.append(("target", target))
    legs.sort(key=lambda kv: kv[1])
    prices = tuple(planning.round_to_tick(stop_limit(v, side, slippage_pct, inst), tick, side) for _, v in legs)
    return GttSpec(type=OCO if len(legs) == 2 else SINGLE, side=side, quantity=abs(quantity),
                   trigger_values=tuple(v for _, v in legs), prices=prices, kinds=tuple(k for k, _ in legs))


def matches(g: Gtt, want: GttSpec) -> bool:
    """Whether the broker's trigger ``g`` is ``want`` (an active one, the same legs and quantity)."""
    if g.status != "active" or g.type != want.type or len(g.orders) != len(want.prices):
        return False
    if tuple(to_paise(v) for v in g.condition.trigger_values) != want.trigger_values:
        return False
    return all(leg.quantity == want.quantity and leg.transaction_type == want.side.value
               and to_paise(leg.price) == price for leg, price in zip(g.orders, want.prices))


def fired_order(g: Gtt) -> tuple[int, str, str]:
    """(leg, order id, rejection) of a triggered GTT's leg: the order it placed, or why it could not."""
    for i, leg in enumerate(g.orders):
        if leg.result is not None:
            r = leg.result.order_result
            return i, r.order_id if r.status != "failed" else "", r.rejection_reason
    return -1, "", ""


def gtt_id_of(meta) -> int:
    """The trigger id an order carries in its ``meta`` (``{"gtt": id}``, a dict or Kite's JSON string)."""
    if isinstance(meta, str):
        try:
            meta = json.loads(meta)
        except ValueError:
            return 0
    if isinstance(meta, dict):
        try:
            return int(meta.get("gtt") or 0)
        except (TypeError, ValueError):
            return 0
    return 0
