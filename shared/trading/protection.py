"""Protection of a position, planned: one stop-loss at the broker for exactly what is held (freeze
slices when it must), following the filled quantity, never a second full-quantity exit.

A ``Protection`` is what a strategy asked for a position (its stop and target, from the entry
signal); ``plan`` compares it with the position and the protective orders working at the broker
and returns the actions that make them agree: place, modify (quantity, trigger), cancel. The target
is not an order: it is watched on ticks, and when the price reaches it the stop-loss order itself
is modified into a LIMIT at the target (``target_actions``), so stop and target are one-cancels-other
by construction. While that LIMIT waits, the stop still protects: if the price comes back to the stop
(``stop_returned``) the LIMIT moves to the stop's own limit price (``stopped_actions``): what the SL
would have become on triggering, and like a triggered stop the market ran past, it is then re-priced
through the market. Pure: the execution worker carries the actions out; the backtest desk simulates
the same rules on bars."""

from __future__ import annotations

from typing import Literal

from msgspec import Struct

from shared.kite.models import Instrument
from shared.messages import OrderRequest, OrderType, TransactionType
from shared.trading import planning
from shared.trading.order import Order

SL_SLIPPAGE_PCT = 0.5  # the default limit beyond a stop's trigger, percent of it (KTA_SL_SLIPPAGE_PCT)

# stop: the SL waits at its trigger, the target is watched; target: the price reached the target, the SL is a
# LIMIT there; stopped: while it waited the price came back to the stop, the LIMIT is at the stop's limit;
# failed: the stop was rejected twice, the position was closed
Mode = Literal["stop", "target", "stopped", "failed"]


class GttSpec(Struct, frozen=True):
    """The trigger a position needs. ``kinds[i]`` is what leg ``i`` is (stop_loss or target); values
    ascending, as Kite wants them (leg i belongs to value i)."""

    type: str
    side: TransactionType
    quantity: int
    trigger_values: tuple[int, ...]  # paise
    prices: tuple[int, ...]  # each leg's LIMIT, paise
    kinds: tuple[str, ...]

    def orders(self, product: str) -> list[dict]:
        """The legs as Kite's ``orders`` field wants them (rupees)."""
        return [{"transaction_type": self.side.value, "quantity": self.quantity, "order_type": "LIMIT",
                 "product": product, "price": price / 100} for price in self.prices]

    def kind_of(self, leg: int) -> str:
        return self.kinds[leg] if 0 <= leg < len(self.kinds) else "stop_loss"


class Protection(Struct, kw_only=True):
    """What protects one strategy's position in one instrument. ``generation`` numbers each new set
    of stop orders (their tags never repeat); ``retried`` marks the one corrected re-placement a
    rejected stop gets before the position is flattened."""

    user_id: str
    strategy_id: str
    exchange: str
    tradingsymbol: str
    instrument_token: int = 0
    product: str = "MIS"
    stop: int = 0  # trigger, paise (0: the strategy set none)
    target: int = 0
    signal_id: str = ""
    generation: int = 0
    retried: bool = False
    mode: Mode = "stop"
    gtt_ids: list[int] = []  # a CNC/NRML position's GTTs at the broker, one per freeze slice (protection_gtt)
    # GTTs asked of the broker whose answer (the id) kta has not had: journaled before the call, matched against
    # the broker's active GTTs after a lost answer or a restart (GTTs carry no tag to look them up by)
    gtt_asked: list[GttSpec] = []

    @property
    def key(self) -> str:
        return position_key(self.strategy_id, self.exchange, self.tradingsymbol)


def position_key(strategy_id: str, exchange: str, tradingsymbol: str) -> str:
    return f"{strategy_id}|{exchange}:{tradingsymbol}"


class Place(Struct, frozen=True):
    request: OrderRequest


class Modify(Struct, frozen=True):
    order: Order
    quantity: int = 0  # the order's new total quantity (filled part included); 0 unchanged
    trigger_price: int = 0
    price: int = 0
    order_type: str = ""


class Cancel(Struct, frozen=True):
    order: Order
    reason: str


Action = Place | Modify | Cancel


def stop_limit(trigger: int, side: TransactionType, slippage_pct: float, inst: Instrument | None) -> int:
    """The SL order's limit: the trigger moved by the slippage in the direction of the exit."""
    slip = max(planning.tick_paise(inst), int(trigger * slippage_pct / 100))
    return trigger - slip if side is TransactionType.SELL else trigger + slip


def stop_request(p: Protection, side: TransactionType, quantity: int, slice_no: int, slippage_pct: float,
                 inst: Instrument | None, trigger: int = 0, price: int = 0) -> OrderRequest:
    trigger = trigger or p.stop
    return planning.order_request(
        p.user_id, signal_id=p.signal_id, kind="stop_loss", exchange=p.exchange, tradingsymbol=p.tradingsymbol,
        instrument_token=p.instrument_token, side=side, quantity=quantity, product=p.product,
        order_type=OrderType.SL, price=price or stop_limit(trigger, side, slippage_pct, inst), trigger_price=trigger,
        origin=f"protect|{p.key}|{p.generation}", index=p.generation, slice_no=slice_no, inst=inst)


def desired(held: int, closing: int) -> int:
    """What the stop must cover: the position less what working exits already close."""
    return max(0, abs(held) - max(0, closing))


def plan(p: Protection, held: int, closing: int, working: list[Order], inst: Instrument | None,
         slippage_pct: float) -> list[Action]:
    """The actions that leave exactly one stop (its freeze slices) for what ``held`` leaves open.
    ``working``: the position's protective orders not yet final; ``closing``: what its other
    working orders on the other side may still fill."""
    need = desired(held, closing)
    side = TransactionType.SELL if held > 0 else TransactionType.BUY
    live = sorted((o for o in working if o.kind == "stop_loss" and o.is_working), key=lambda o: o.slice_no)
    stray = [o for o in working if o.is_working and (o.kind != "stop_loss" or o.transaction_type is not side)]
    actions: list[Action] = [Cancel(o, "not this position's stop") for o in stray]
    live = [o for o in live if o not in stray]
    if need == 0 or not p.stop or p.mode == "failed":
        return actions + ([Cancel(o, "nothing left to protect") for o in live] if need == 0 else [])
    wanted = planning.slices(need, planning.lot_of(inst), planning.freeze_of(inst))
    for i, order in enumerate(live):
        if i >= len(wanted):
            actions.append(Cancel(order, "the position shrank"))
            continue
        quantity = order.filled_quantity + wanted[i] if order.remaining != wanted[i] else 0
        trigger = p.stop if p.mode == "stop" and order.trigger_price != p.stop else 0
        if quantity or trigger:
            price = stop_limit(trigger, side, slippage_pct, inst) if trigger else 0
            actions.append(Modify(order, quantity=quantity, trigger_price=trigger, price=price))
    if len(wanted) > len(live):
        p.generation += 1  # fresh tags for the new slices
        for j, q in enumerate(wanted[len(live):], start=len(live)):
            actions.append(Place(stop_request(p, side, q, j, slippage_pct, inst)))
    return actions


def target_reached(p: Protection, held: int, last_price: int) -> bool:
    if not p.target or p.mode != "stop" or not held or last_price <= 0:
        return False
    return last_price >= p.target if held > 0 else last_price <= p.target


def target_actions(p: Protection, working: list[Order], inst: Instrument | None) -> list[Action]:
    """The price reached the target: each stop order becomes a LIMIT at the target."""
    price = planning.round_to_tick(p.target, planning.tick_paise(inst))
    return [Modify(o, order_type=OrderType.LIMIT.value, price=price) for o in working
            if o.kind == "stop_loss" and o.is_working]


def stop_returned(p: Protection, held: int, last_price: int) -> bool:
    """The target's LIMIT waits and the price is back at the stop: the stop takes over again."""
    if p.mode != "target" or not p.stop or not held or last_price <= 0:
        return False
    return last_price <= p.stop if held > 0 else last_price >= p.stop


def stopped_actions(p: Protection, held: int, working: list[Order], inst: Instrument | None,
                    slippage_pct: float) -> list[Action]:
    """Back at the stop: each LIMIT the target left moves to the stop's own limit (as if the SL triggered)."""
    side = TransactionType.SELL if held > 0 else TransactionType.BUY
    price = planning.round_to_tick(stop_limit(p.stop, side, slippage_pct, inst), planning.tick_paise(inst), side)
    return [Modify(o, order_type=OrderType.LIMIT.value, price=price) for o in working
            if o.is_protective and o.is_working]  # the SL as a LIMIT at the target, or a GTT's fired target leg


def role(order: Order, stop: int) -> str:
    """What a protective order is now, whatever it was placed as: "stop_loss" while it is a stop order or a
    limit at or through the position's ``stop`` (back at the stop, a triggered stop chased, a GTT's stop leg),
    "target" once a limit on the profit side of it (the MIS stop turned into a LIMIT at the target, a GTT's
    target leg). Without a stop to judge by, what it was placed as. "" for any other order."""
    if not order.is_protective:
        return ""
    if order.order_type in (OrderType.SL.value, OrderType.SL_M.value):
        return "stop_loss"
    if order.order_type != OrderType.LIMIT.value or not stop or not order.price:
        return order.kind
    beyond = order.price > stop if order.transaction_type is TransactionType.SELL else order.price < stop
    return "target" if beyond else "stop_loss"


CHASE_BAND_PCT = 2.0  # a triggered stop the price ran past is re-priced this far through the last price


def chase_limit(side: TransactionType, last_price: int, inst: Instrument | None) -> int:
    """The LIMIT a triggered stop the market ran past is moved to: ``CHASE_BAND_PCT`` through the last price."""
    through = 1 - CHASE_BAND_PCT / 100 if side is TransactionType.SELL else 1 + CHASE_BAND_PCT / 100
    return planning.round_to_tick(int(last_price * through), planning.tick_paise(inst), side)


MIN_TRIGGER_GAP = 10  # paise: a GTT's trigger must stand clear of the last price (Kite: 0.25 %, and more on cheap
# contracts — a ₹1.40 option's stop one tick away was refused "too close to the last price" twice, and flattened)


def trigger_gap(last_price: int, tick: int) -> int:
    """How far from the last price a stop's trigger stands at the least: a tick, half a percent, 10 paise."""
    return max(tick, last_price // 200, MIN_TRIGGER_GAP)


def default_stop(last_price: int, held: int, pct: float, inst: Instrument | None) -> int:
    """The stop a position without one of its own gets (Stop, keep protected): ``pct`` from the last
    price on the exit side, at least ``trigger_gap`` away, on the tick grid."""
    tick = planning.tick_paise(inst)
    away = int(last_price * pct / 100)
    gap = max(away, trigger_gap(last_price, tick))
    stop = last_price - gap if held > 0 else last_price + gap
    # rounded away from the price: a grid step back towards it could bring it inside the gap again
    rounded = (stop // tick) * tick if held > 0 else -((-stop) // tick) * tick
    return max(tick, rounded)


def corrected_stop(p: Protection, held: int, last_price: int, lower: int, upper: int,
                   inst: Instrument | None, slippage_pct: float) -> int:
    """A trigger the exchange accepts after a rejected stop: on the exit side of the last price by at
    least ``trigger_gap``, with its limit inside the circuit band."""
    tick = planning.tick_paise(inst)
    sell = held > 0
    trigger = p.stop or last_price
    if last_price > 0:
        gap = trigger_gap(last_price, tick)
        trigger = min(trigger, last_price - gap) if sell else max(trigger, last_price + gap)
    if lower and upper:
        side = TransactionType.SELL if sell else TransactionType.BUY
        slip = abs(trigger - stop_limit(trigger, side, slippage_pct, inst))
        trigger = max(trigger, lower + slip) if sell else min(trigger, upper - slip)
    return planning.round_to_tick(trigger, tick)
