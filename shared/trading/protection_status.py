"""What protects one open position right now, judged for the trader (``m.ProtectionStatus``): the GTT
OCO(s) of a CNC/NRML position or the SL order of an MIS one, the order a GTT leg fired or the stop turned
into a LIMIT at the target — each with what it would close — and, when they do not cover what is held,
why, in words. Pure: the execution worker passes what its desk knows (``Protector.status``)."""

from __future__ import annotations

from collections.abc import Callable

from shared.kite.models import Gtt, Instrument
from shared.messages import Exchange, Guard, Leg, Position, ProtectionStatus, TransactionType, to_paise
from shared.trading.hedge import uncovered_quantities
from shared.trading.order import Order
from shared.trading.protection import Protection

GTT_ACTIVE = "active"
UNREAD = "unread"  # the GTT book could not be read: nothing is claimed for it


def gtt_guard(gtt_id: int, g: Gtt | None, read: bool = True) -> Guard:
    """A GTT as the dashboard shows it: its stop and target legs told apart by the side it sells (a long
    position's stop is the lower trigger), the quantity of its legs."""
    if g is None:
        return Guard(kind="gtt", id=str(gtt_id), status="gone" if read else UNREAD, quantity=0)
    values = sorted(to_paise(v) for v in g.condition.trigger_values)
    leg = g.orders[0] if g.orders else None
    sells = leg is None or leg.transaction_type != "BUY"
    if len(values) >= 2:
        stop, target = (values[0], values[-1]) if sells else (values[-1], values[0])
    else:
        stop, target = (values[0] if values else 0), 0
    return Guard(kind="gtt", id=str(g.id), status=g.status, quantity=leg.quantity if leg else 0, stop=stop,
                 target=target)


def order_guard(o: Order) -> Guard:
    """A working protective order: the day SL (``sl``), or a LIMIT a GTT leg fired / the stop became at
    the target (``order``)."""
    kind = "sl" if o.order_type in ("SL", "SL-M") else "order"
    return Guard(kind=kind, id=o.order_id, status=o.status or o.state.name, quantity=o.remaining,
                 stop=o.trigger_price, price=o.price)


def option_cover(positions: list[Position], instrument: Callable[[str, str], Instrument | None]) -> dict[
        tuple[str, str, str], str]:
    """(strategy, exchange, symbol) → how an option position's loss is bounded without a stop: ``long`` (a
    bought option loses at most what it cost) or ``hedged`` (a short option the same strategy's long options
    cover: same underlying and type, expiring no earlier — ``shared.trading.hedge``'s rule)."""
    out: dict[tuple[str, str, str], str] = {}
    legs: dict[tuple[str, str], list[Leg]] = {}
    for p in positions:
        inst = instrument(p.exchange, p.tradingsymbol)
        if not p.quantity or inst is None or inst.instrument_type not in ("CE", "PE"):
            continue
        if p.quantity > 0:
            out[(p.strategy_id, p.exchange, p.tradingsymbol)] = "long"
        legs.setdefault((p.strategy_id, inst.name), []).append(Leg(
            exchange=Exchange(p.exchange), tradingsymbol=p.tradingsymbol, instrument_token=inst.instrument_token,
            transaction_type=TransactionType.BUY if p.quantity > 0 else TransactionType.SELL,
            quantity=abs(p.quantity), option_type=inst.instrument_type, expiry=str(inst.expiry or "")))
    for (strategy_id, _), group in legs.items():
        uncovered = uncovered_quantities(group)
        for leg in group:
            if leg.transaction_type is TransactionType.SELL and leg.tradingsymbol not in uncovered:
                out[(strategy_id, leg.exchange.value, leg.tradingsymbol)] = "hedged"
    return out


BOUNDED = {"long": "a bought option: its risk is the premium paid",
           "hedged": "short, covered by the strategy's long options",
           "settling": "expires at today's close (or has): the broker settles it at the final settlement price, "
                       "and kta books it once the broker's positions no longer list it"}


def judge(position: Position, plan: Protection | None, gtts: list[Guard], orders: list[Order], closing: int,
          in_doubt: bool, cover: str = "") -> ProtectionStatus:
    """``position``: one strategy's open position; ``plan``: its protection (None: the strategy set no
    stop); ``gtts``: its GTTs as ``gtt_guard`` shows them; ``orders``: its working protective orders;
    ``closing``: what its working exits may still close; ``cover``: ``option_cover``'s word on it."""
    held = abs(position.quantity)
    guards = gtts + [order_guard(o) for o in orders]
    covered = sum(g.quantity for g in guards if g.kind != "gtt" or g.status == GTT_ACTIVE)
    if covered >= held:
        state, note = "protected", ""
    elif closing and covered + closing >= held:
        state, note = "closing", f"an exit of {closing} is working"
    elif cover in BOUNDED and not covered:
        state, note = cover, BOUNDED[cover]
    else:
        state = "partial" if covered else "unprotected"
        note = _why(plan, gtts, in_doubt, covered, held)
    return ProtectionStatus(strategy_id=position.strategy_id, exchange=position.exchange,
                            tradingsymbol=position.tradingsymbol, product=plan.product if plan else position.product,
                            quantity=position.quantity, stop=plan.stop if plan else 0,
                            target=plan.target if plan else 0, guards=guards, covered=min(covered, held), state=state,
                            note=note)


def _why(plan: Protection | None, gtts: list[Guard], in_doubt: bool, covered: int, held: int) -> str:
    if plan is None or not (plan.stop or plan.gtt_ids):
        why = "no stop-loss set" if plan is None or not plan.target else "a target but no stop-loss"
    elif plan.mode == "failed":
        why = "its stop was rejected twice and kta sent an order to close it"
    elif in_doubt:
        why = "its stop ended outside kta: none is placed until the broker's positions are checked"
    elif any(g.status == UNREAD for g in gtts):
        why = "the broker's GTT book could not be read"
    else:
        why = "no working stop at the broker"
    return f"{why} ({held - covered} of {held} uncovered)" if covered else why
