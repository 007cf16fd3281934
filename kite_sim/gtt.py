"""Kite's GTT (good till triggered) book: ``/gtt/triggers`` place / modify / delete / list / get, single and
two-leg (OCO) triggers, fired by the sim's own last traded price.

What Kite does, and so the sim (kite-connect.md §3.13, Zerodha's GTT terms and support articles):
- ``type`` is ``single`` (one trigger value, one order) or ``two-leg`` (two values, two orders; order *i*
  belongs to trigger value *i*: the lower value's order fires when the price falls to it, the upper
  value's when it rises to it, and firing one ends the trigger — one cancels the other).
- Orders are LIMIT orders; CNC on equity (NSE/BSE), NRML on F&O (NFO/BFO); an equity OCO sells.
- Each trigger value must be at least 0.25% from the last price (9 paise below ₹50); a two-leg's values
  must bracket it. A single trigger fires on the side of the last price it was placed on.
- When the last traded price reaches a trigger during market hours, its order is placed into the
  regular order book (a DAY LIMIT order at the leg's price, ``meta: {"gtt": id}``) and the trigger's
  status becomes ``triggered`` with the order's result; a refused placement is a ``failed`` result.
- A trigger lives a year (an F&O one until its contract expires), then ``expired``; at most 250 are active.
"""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta

from kite_sim.failures import Failures
from kite_sim.instruments import Instrument
from kite_sim.orders import Account, OrderError, paise, rupees
from kite_sim.validation import instrument, order_spec
from shared.ist import IST

log = logging.getLogger("kite_sim.gtt")

SINGLE, OCO = "single", "two-leg"
MAX_ACTIVE = 250
MIN_GAP_PCT = 0.25  # a trigger at least this far (in %) from the last price ...
MIN_GAP_PAISE = 9  # ... or 9 paise for prices up to ₹50
STAMP = "%Y-%m-%d %H:%M:%S"


@dataclass
class Leg:
    transaction_type: str
    quantity: int
    order_type: str
    product: str
    price: int  # paise
    result: dict | None = None

    def as_kite(self, inst: Instrument) -> dict:
        return {"exchange": inst.exchange, "tradingsymbol": inst.tradingsymbol, "product": self.product,
                "order_type": self.order_type, "transaction_type": self.transaction_type,
                "quantity": self.quantity, "price": rupees(self.price), "result": self.result}


@dataclass
class Trigger:
    trigger_id: int
    user_id: str
    type: str
    inst: Instrument
    trigger_values: list[int]  # paise, ascending for a two-leg
    last_price: float  # as the client gave it (rupees)
    reference: int  # the sim's last price when placed or modified (paise): which side a single fires on
    legs: list[Leg]
    created_at: str
    updated_at: str
    expires_at: str
    status: str = "active"
    meta: dict = field(default_factory=dict)

    def as_kite(self) -> dict:
        inst = self.inst
        return {"id": self.trigger_id, "user_id": self.user_id, "parent_trigger": None, "type": self.type,
                "created_at": self.created_at, "updated_at": self.updated_at, "expires_at": self.expires_at,
                "status": self.status,
                "condition": {"exchange": inst.exchange, "last_price": self.last_price,
                              "tradingsymbol": inst.tradingsymbol,
                              "trigger_values": [rupees(v) for v in self.trigger_values],
                              "instrument_token": inst.instrument_token},
                "orders": [leg.as_kite(inst) for leg in self.legs], "meta": self.meta}

    def fired_leg(self, ltp: int) -> int | None:
        """Which leg the last price ``ltp`` fires, if any."""
        if self.type == SINGLE:
            value = self.trigger_values[0]
            hit = ltp >= value if value > self.reference else ltp <= value
            return 0 if hit else None
        lower, upper = self.trigger_values
        return 0 if ltp <= lower else 1 if ltp >= upper else None

    def state(self) -> dict:
        """For the snapshot."""
        return {**{k: v for k, v in asdict(self).items() if k not in ("inst", "legs")},
                "token": self.inst.instrument_token, "legs": [asdict(leg) for leg in self.legs]}


def from_state(doc: dict, inst: Instrument) -> Trigger:
    fields = {k: v for k, v in doc.items() if k not in ("token", "legs")}
    return Trigger(inst=inst, legs=[Leg(**leg) for leg in doc["legs"]], **fields)


def _json(f: dict, name: str, kind: type):
    try:
        value = json.loads(f.get(name) or "")
    except ValueError:
        value = None
    if not isinstance(value, kind):
        raise OrderError(f"Invalid `{name}`.")
    return value


class GttBook:
    """Every account's triggers; ``check`` fires them on the broker's heartbeat while the market is open."""

    def __init__(self, broker) -> None:
        self.broker = broker
        self.next_id = 1
        self.failures = Failures(log)  # by trigger id

    @property
    def _market(self):
        return self.broker.market

    # ---- the API -------------------------------------------------------------------------------

    def place(self, user_id: str, f: dict) -> Trigger:
        acc = self.broker.account(user_id)
        self._refused_by_fault()
        if sum(1 for t in acc.gtts.values() if t.status == "active") >= MAX_ACTIVE:
            raise OrderError(f"You can have a maximum of {MAX_ACTIVE} active GTTs.")
        now = self._market.clock.stamp()
        t = Trigger(self.next_id, user_id, created_at=now, updated_at=now, **self._parse(f, now))
        self.next_id += 1
        acc.gtts[t.trigger_id] = t
        log.info("gtt %d placed: %s %s at %s", t.trigger_id, t.type, t.inst.tradingsymbol,
                 [rupees(v) for v in t.trigger_values], extra={"user_id": user_id})
        return t

    def modify(self, user_id: str, trigger_id: int, f: dict) -> Trigger:
        t = self.get(user_id, trigger_id)
        if t.status != "active":
            raise OrderError(f"Only an active GTT can be modified; this one is {t.status}.")
        self._refused_by_fault()
        for name, value in self._parse(f, t.created_at).items():
            setattr(t, name, value)
        t.updated_at = self._market.clock.stamp()
        log.info("gtt %d modified: %s %s at %s", t.trigger_id, t.type, t.inst.tradingsymbol,
                 [rupees(v) for v in t.trigger_values], extra={"user_id": user_id})
        return t

    def _refused_by_fault(self) -> None:
        reason = self.broker.faults.take_gtt_reject()
        if reason:
            raise OrderError(reason)

    def delete(self, user_id: str, trigger_id: int) -> Trigger:
        t = self.get(user_id, trigger_id)
        if t.status != "active":
            raise OrderError(f"Only an active GTT can be deleted; this one is {t.status}.")
        t.status, t.updated_at = "deleted", self._market.clock.stamp()
        log.info("gtt %d deleted", t.trigger_id, extra={"user_id": user_id})
        return t

    def get(self, user_id: str, trigger_id: int) -> Trigger:
        t = self.broker.account(user_id).gtts.get(trigger_id)
        if t is None:
            raise OrderError("Invalid `trigger_id`. GTT not found.")
        return t

    def all(self, user_id: str) -> list[Trigger]:
        return sorted(self.broker.account(user_id).gtts.values(), key=lambda t: -t.trigger_id)

    # ---- validation ----------------------------------------------------------------------------

    def _parse(self, f: dict, created_at: str) -> dict:
        """The form ``f`` (type, condition, orders) validated: the fields of a trigger created at ``created_at``."""
        kind = f.get("type")
        if kind not in (SINGLE, OCO):
            raise OrderError("Invalid `type`. Use `single` or `two-leg`.")
        cond = _json(f, "condition", dict)
        orders = _json(f, "orders", list)
        inst = instrument(self._market.universe, cond)
        values = cond.get("trigger_values")
        want = 1 if kind == SINGLE else 2
        try:
            values = [paise(float(v)) for v in values]
        except (TypeError, ValueError):
            raise OrderError("Invalid `trigger_values`.") from None
        if len(values) != want or len(orders) != want:
            raise OrderError(f"A {kind} GTT needs {want} trigger value{'s' * (want > 1)} and "
                             f"{want} order{'s' * (want > 1)}.")
        if any(v <= 0 for v in values) or (kind == OCO and values[0] >= values[1]):
            raise OrderError("Invalid `trigger_values`.")
        legs = [self._leg(inst, o) for o in orders]
        if kind == OCO and inst.instrument_type == "EQ" and any(leg.transaction_type != "SELL" for leg in legs):
            raise OrderError("A two-leg (OCO) GTT on equity can only sell.")
        ltp = paise(self._market.price(inst))
        if kind == OCO and not values[0] < ltp < values[1]:
            raise OrderError("Trigger prices must bracket current price.")
        gap = MIN_GAP_PAISE if ltp <= 50_00 else ltp * MIN_GAP_PCT / 100
        if any(abs(v - ltp) < gap for v in values):
            raise OrderError(f"Trigger price is too close to the last price ({rupees(ltp):.2f}). It should be at least "
                             f"{MIN_GAP_PCT}% away (9 paise for prices up to 50).")
        try:
            last_price = float(cond.get("last_price") or rupees(ltp))
        except (TypeError, ValueError):
            raise OrderError("Invalid `last_price`.") from None
        return {"type": kind, "inst": inst, "trigger_values": values, "legs": legs, "last_price": last_price,
                "reference": ltp, "expires_at": self._expiry(created_at, inst)}

    def _leg(self, inst: Instrument, o) -> Leg:
        if not isinstance(o, dict):
            raise OrderError("Invalid `orders`.")
        if (o.get("exchange"), o.get("tradingsymbol")) != (inst.exchange, inst.tradingsymbol):
            raise OrderError("Invalid `orders`: every order must be for the condition's instrument.")
        if o.get("order_type") != "LIMIT":
            raise OrderError("Invalid `order_type`. GTT orders must be LIMIT orders.")
        product = "CNC" if inst.instrument_type == "EQ" else "NRML"
        if o.get("product") != product:
            raise OrderError("GTT is available only for CNC orders on equity and NRML orders on F&O.")
        spec = order_spec(self._market.universe, self._market.clock.today(), "regular", {
            **{k: o.get(k) for k in ("exchange", "tradingsymbol", "transaction_type", "quantity", "price")},
            "order_type": "LIMIT", "product": product})
        return Leg(spec.transaction_type, spec.quantity, "LIMIT", product, spec.price)

    def _expiry(self, created: str, inst: Instrument) -> str:
        until = datetime.strptime(created, STAMP).replace(tzinfo=IST) + timedelta(days=365)
        if inst.expiry is not None:
            until = min(until, datetime(inst.expiry.year, inst.expiry.month, inst.expiry.day, 15, 30, tzinfo=IST))
        return until.strftime(STAMP)

    # ---- the heartbeat ---------------------------------------------------------------------------

    def check(self, market_open: bool) -> None:
        """Expire triggers past their date; while the market is open, fire the ones the price reached."""
        now = self._market.clock.stamp()
        for acc in list(self.broker.accounts.values()):
            for t in list(acc.gtts.values()):
                if t.status != "active":
                    continue
                if now >= t.expires_at:
                    t.status, t.updated_at = "expired", now
                    log.info("gtt %d expired", t.trigger_id, extra={"user_id": t.user_id})
                    continue
                if market_open:
                    what = f"gtt {t.trigger_id} ({t.inst.tradingsymbol})"
                    try:
                        ltp = paise(self._market.price(t.inst))
                        leg = t.fired_leg(ltp)
                        if leg is not None:
                            self._fire(acc, t, leg, ltp, now)
                    except Exception:  # noqa: BLE001 - one trigger must not stop the others
                        self.failures.failed(t.trigger_id, what)
                    else:
                        self.failures.ok(t.trigger_id, what)

    def _fire(self, acc: Account, t: Trigger, index: int, ltp: int, now: str) -> None:
        leg, inst = t.legs[index], t.inst
        form = {"exchange": inst.exchange, "tradingsymbol": inst.tradingsymbol, "transaction_type": leg.transaction_type,
                "quantity": str(leg.quantity), "order_type": "LIMIT", "product": leg.product,
                "price": f"{leg.price / 100:.2f}", "validity": "DAY"}
        t.status, t.updated_at = "triggered", now
        try:
            o = self.broker.place(acc.user_id, "regular", form, meta={"gtt": t.trigger_id})
            failed = o.status == "REJECTED"
            outcome = {"status": "failed" if failed else "success", "order_id": o.order_id,
                       "rejection_reason": (o.status_message or "") if failed else ""}
        except OrderError as e:
            outcome = {"status": "failed", "order_id": "", "rejection_reason": e.message}
        leg.result = {"account_id": acc.user_id, "exchange": inst.exchange, "tradingsymbol": inst.tradingsymbol,
                      "validity": "DAY", "product": leg.product, "order_type": "LIMIT",
                      "transaction_type": leg.transaction_type, "quantity": leg.quantity, "price": rupees(leg.price),
                      "meta": json.dumps({"gtt": t.trigger_id}), "timestamp": now, "triggered_at": rupees(ltp),
                      "order_result": outcome}
        log.info("gtt %d triggered at %.2f: leg %d %s %s x%d -> %s %s", t.trigger_id, ltp / 100, index,
                 leg.transaction_type, inst.tradingsymbol, leg.quantity, outcome["status"],
                 outcome["order_id"] or outcome["rejection_reason"], extra={"user_id": acc.user_id})

    def purge(self, acc: Account) -> None:
        """At the day roll: only active triggers stay in the book."""
        acc.gtts = {k: t for k, t in acc.gtts.items() if t.status == "active"}
