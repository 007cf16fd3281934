"""A CNC or NRML position's protection in a backtest, as live: GTTs at the (simulated) broker, not a day SL.

Live (``shared/trading/protection_gtt.py``, carried out by ``execution_worker/gtt_keeper.py``; kite_sim's
``gtt.py`` is the broker) a delivery or carry-forward position is protected from its entry's fill by one GTT
OCO per freeze slice — a stop leg and a target leg, each a LIMIT priced through its trigger by the stop's
slippage — which lives at the broker across closes until the price reaches a leg. Here the same spec
(``protection_gtt.specs``, its triggers moved out of Kite's band around the last price when placed), held in
``Gtts`` across days (``Desk.end_of_day`` cancels day orders, never a GTT), and fired along each bar's path the
way kite_sim fires one on its last traded price: an OCO's lower value when the price falls to it, its upper
when it rises to it; a single trigger on the side of the price it was placed on. Firing ends the trigger (one
cancels the other) and places ONE DAY LIMIT order at the leg's price, which fills from the firing point like
any marketable LIMIT (``shared/fills``); a stop leg's the market gapped past is chased through it as the live
protector chases it (``stops.chase``). One that still rests works as any protective LIMIT (``stops.walk``: a
target's gives way to the stop) and expires at the close; the position then gets a new GTT, as ``gtt_keeper``
re-creates one for a position whose fired order ended unfilled. The order record shows each GTT as a row
(``order_type`` ``GTT``: ``trigger_price`` the stop's trigger, ``price`` the target's, 0 without one) and the
order it fired as a LIMIT row of kind ``stop_loss`` or ``target``. A GTT of an F&O contract ends with the contract:
at the close of its expiry day the broker deletes it (``expire``: ``EXPIRED``, as kite_sim's ``gtt.py`` ends one at
the expiry's 15:30), and none is placed on a contract past its expiry — what is still held settles as live does
(options.py, ``execution_worker/exercise.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from shared.fills import limit_ok
from shared.kite.models import Instrument
from shared.messages import OrderType, StrategyOutcome
from shared.trading.order import OrderState
from shared.trading.planning import order_request, tick_paise
from shared.trading.protection import SL_SLIPPAGE_PCT, GttSpec, Protection
from shared.trading.protection_gtt import OCO, spec, specs
from strategy_worker.backtest.stops import chase

if TYPE_CHECKING:
    from strategy_worker.backtest.desk import Desk


@dataclass(slots=True)
class Trigger:
    """One GTT at the simulated broker: its spec, the last price it was placed at, what it protects."""

    id: int
    spec: GttSpec
    reference: int  # paise: the last price when placed or modified (Kite's ``condition.last_price``)
    protection: Protection
    inst: Instrument

    @property
    def tag(self) -> str:
        return f"GTT{self.id}"

    def fired_leg(self, price: int) -> int | None:
        """Which leg a last price ``price`` fires (kite_sim ``Trigger.fired_leg``)."""
        values = self.spec.trigger_values
        if self.spec.type != OCO:
            return 0 if (price >= values[0] if values[0] > self.reference else price <= values[0]) else None
        return 0 if price <= values[0] else 1 if price >= values[1] else None

    def fire(self, path: tuple[int, ...]) -> tuple[int, int, int] | None:
        """(index in ``path``, leg, last price at firing) where the price first reaches a leg, or None: a gap
        through a value fires at the open; between two points the price passes every value in between."""
        leg = self.fired_leg(path[0])
        if leg is not None:
            return 0, leg, path[0]
        for i in range(1, len(path)):
            a, b = path[i - 1], path[i]
            for leg, value in enumerate(self.spec.trigger_values):
                if min(a, b) <= value <= max(a, b) and self.fired_leg(value) == leg:
                    return i, leg, value
        return None

    def wake(self) -> tuple[int, int]:
        """(a price at or below which, a price at or above which) the trigger may fire; 0 / -1 none."""
        values = self.spec.trigger_values
        if self.spec.type == OCO:
            return values[0], values[1]
        return (0, values[0]) if values[0] > self.reference else (values[0], -1)


class Gtts:
    """The simulated broker's GTT book of one backtest: token -> trigger id -> Trigger."""

    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.by_token: dict[int, dict[int, Trigger]] = {}
        self.ids = 0

    def of(self, p: Protection) -> list[Trigger]:
        return [t for t in self.by_token.get(p.instrument_token, {}).values() if t.protection is p]

    def sync(self, p: Protection, inst: Instrument, held: int, closing: int) -> None:
        """``p``'s GTTs brought in line with what ``held`` leaves open after ``closing`` (what its fired orders
        may still close): modified where they differ from what they would be at the price they were placed at,
        deleted where too many, placed where missing (``gtt_keeper.sync``)."""
        desk = self.desk
        last = desk.paise(inst.instrument_token)
        want = [] if expired(inst, desk.day) else specs(p, held, closing, last, inst, SL_SLIPPAGE_PCT)
        have = self.of(p)
        for t in have[len(want):]:
            self.delete(t, "nothing left to protect" if not want else "the position shrank")
        for i, w in enumerate(want):
            if i < len(have):
                t = have[i]
                again = spec(p, w.quantity if held > 0 else -w.quantity, t.reference, inst, SL_SLIPPAGE_PCT)
                if again != t.spec:
                    t.spec, t.reference = w, last
                    desk.rec.gtt(desk.now, t, "ACTIVE")
                continue
            self.ids += 1
            t = Trigger(self.ids, w, last, p, inst)
            self.by_token.setdefault(inst.instrument_token, {})[t.id] = t
            desk.rec.gtt(desk.now, t, "ACTIVE")
            if p.mode in ("target", "stopped"):  # a fired leg's order ended unfilled: the new GTT watches both
                p.mode = "stop"

    def expire(self, day: str) -> None:
        """The close of ``day``: the GTTs of contracts expiring then (or before) are gone from the broker."""
        for book in list(self.by_token.values()):
            for t in [t for t in book.values() if expired(t.inst, day)]:
                self.delete(t, "the contract expired", status="EXPIRED")

    def delete(self, t: Trigger, reason: str, status: str = "DELETED") -> None:
        book = self.by_token.get(t.inst.instrument_token, {})
        if book.pop(t.id, None) is not None:
            self.desk.rec.order_status(t.tag, status)
        if not book:
            self.by_token.pop(t.inst.instrument_token, None)

    def delete_for(self, strategy_id: str, token: int, reason: str) -> None:
        for t in [t for t in self.by_token.get(token, {}).values() if t.protection.strategy_id == strategy_id]:
            self.delete(t, reason)

    def wake(self, token: int) -> tuple[int, int]:
        low, high = 0, -1
        for t in self.by_token.get(token, {}).values():
            lo, hi = t.wake()
            low = max(low, lo)
            high = hi if high < 0 else (high if hi < 0 else min(high, hi))
        return low, high

    def on_path(self, token: int, path: tuple[int, ...]) -> list[StrategyOutcome]:
        """The triggers of ``token`` the bar's path reaches, fired in turn."""
        out: list[StrategyOutcome] = []
        for t in list(self.by_token.get(token, {}).values()):
            hit = t.fire(path)
            if hit is not None:
                out += self._fired(t, path, *hit)
        return out

    def _fired(self, t: Trigger, path: tuple[int, ...], at: int, leg: int, price: int) -> list[StrategyOutcome]:
        """The trigger ends; its leg's DAY LIMIT order is placed at ``price`` and fills from there, or rests."""
        desk, p, inst, s = self.desk, t.protection, t.inst, t.spec
        book = self.by_token.get(inst.instrument_token, {})
        book.pop(t.id, None)
        if not book:
            self.by_token.pop(inst.instrument_token, None)
        desk.rec.order_status(t.tag, "TRIGGERED")
        kind, limit, side = s.kind_of(leg), s.prices[leg], s.side.value
        req = order_request(desk.user_id, signal_id=p.signal_id, kind=kind, exchange=inst.exchange,
                            tradingsymbol=inst.tradingsymbol, instrument_token=inst.instrument_token, side=s.side,
                            quantity=s.quantity, product=p.product, order_type=OrderType.LIMIT, price=limit,
                            origin=f"gtt|{p.key}|{t.id}", index=t.id, inst=inst)
        order = desk.order(req, p.strategy_id, OrderState.OPEN)
        desk.rec.order(desk.now, req, "OPEN", 0, p.strategy_id)
        tick = tick_paise(inst)
        fill = desk.fills.market(side, price, tick, band=desk.band(inst))
        if not limit_ok(side, req.price, fill):  # the spread would cross the limit: at the limit, or it waits
            fill = req.price if limit_ok(side, req.price, price) else 0
        if not fill:
            rest = desk.fills.limit(side, req.price, (price, *path[at + 1:]), tick)
            fill = rest[1] if rest is not None else 0
        if not fill and kind == "stop_loss":  # the market ran past the stop's LIMIT: chased through it
            fill = chase(desk.fills, order, (at, price), inst, desk.band(inst), desk.modify)[1]
        if not fill:  # it rests at the exchange (a DAY order): a target's LIMIT still gives way to the stop
            desk.rest(order, inst, p)
            if kind == "target" and p.mode == "stop":
                p.mode = "target"
            return []
        desk.complete(order, fill)
        desk.rec.order_status(req.tag, "COMPLETE", fill, desk.now)
        out = [desk.fill(p.strategy_id, p.signal_id, kind, inst, side, s.quantity, fill, p.product, "protective_fill")]
        return out + desk.sync(p, inst)


def expired(inst: Instrument, day: str) -> bool:
    """An F&O contract whose expiry is ``day`` (yyyy-mm-dd) or before: by its close no GTT of it stands."""
    return inst.expiry is not None and bool(day) and inst.expiry.isoformat() <= day
