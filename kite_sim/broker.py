"""Order matching of the paper broker.

Orders follow Kite's status sequence (PUT ORDER REQ RECEIVED → VALIDATION PENDING → OPEN PENDING →
OPEN / TRIGGER PENDING → COMPLETE / CANCELLED / REJECTED), kept as history rows. Fills walk the
simulated depth, so a large order fills partially and stays OPEN until the book refills. With market
hours on, regular orders are refused while the market is closed and AMOs wait (AMO REQ RECEIVED) for
the open. Money is integer paise inside; the REST layer shows rupees like Kite.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import fields

from kite_sim import risk, validation
from kite_sim.failures import Failures
from kite_sim.faults import Faults
from kite_sim.gtt import GttBook
from kite_sim.instruments import Instrument
from kite_sim.market import Market
from kite_sim.orders import (  # noqa: F401
    MAX_MODIFICATIONS,
    TERMINAL,
    Account,
    Order,
    OrderError,
    OrderSpec,
    PositionBook,
    Trade,
    paise,
)
from shared import fills

log = logging.getLogger("kite_sim.broker")

MARKET_CLOSED = "Markets are closed right now. Use GTT for placing long standing orders instead."


def first_sequences(now: float) -> tuple[int, int]:
    """Where a freshly started sim's order and trade ids begin counting: at the millisecond of the day it
    started (×10 for orders), so a sim started again without its snapshot never hands out an id an earlier
    one did, as Kite never does (kta's journal and the bus's de-duplication of fills key on them). The
    shape stays Kite's: a 9-digit order count after the date, an 8-digit trade id."""
    ms = int(now % 86400 * 1000)
    return ms * 10 + 1, ms + 1


class Broker:
    def __init__(self, market: Market, faults: Faults, on_order_update: Callable[[str, dict], None],
                 on_day_end: Callable[[Broker, object, object], None] | None = None) -> None:
        self.market = market
        self.faults = faults
        self.on_order_update = on_order_update
        self.on_day_end = on_day_end  # settlement, when enabled: (broker, old day, new day)
        self.accounts: dict[str, Account] = {}
        self.next_order_seq, self.next_trade_seq = first_sequences(time.time())
        self._day = market.clock.today()
        self.gtt = GttBook(self)
        self.failures = Failures(log)  # by order id

    def set_sequences(self, order_seq: int, trade_seq: int) -> None:
        self.next_order_seq, self.next_trade_seq = order_seq, trade_seq

    def account(self, user_id: str, funds: int = 10_00_000_00) -> Account:
        if user_id not in self.accounts:
            self.accounts[user_id] = Account(user_id, funds)
        return self.accounts[user_id]

    def _new_id(self) -> str:
        self.next_order_seq += 1
        return f"{self._day:%y%m%d}{self.next_order_seq - 1:09d}"

    def available(self, acc: Account) -> int:
        return risk.available(self.market, acc)

    # ---- the market heartbeat -----------------------------------------------------------------

    def roll_day(self) -> None:
        """The trading day rolls (settled, when settlement is on) before anything happens in the new one: the
        market loop's tick rolls it, and so does every order operation — the clock walks from 15:30 straight
        into the next 09:15, and an order placed before the loop's next tick was numbered and booked as the old
        day's, filled at the new day's prices, then settled away with the old day's book (its fill missing
        from the new day's order book, its position carried as overnight)."""
        today = self.market.clock.today()
        if today != self._day:
            old, self._day = self._day, today
            added = self.market.roll_universe(today)
            log.info("trading day %s -> %s (%d contracts listed)", old, today, added)
            if self.on_day_end is not None:
                self.on_day_end(self, old, today)

    def tick(self) -> None:
        """Called by the market loop: roll the day, release AMOs at the open, match resting orders."""
        self.roll_day()
        is_open = self.market.clock.is_open()
        self.gtt.check(is_open)
        if is_open:
            self.release_amo()
            self.match_all()

    def release_amo(self) -> None:
        for acc in self.accounts.values():
            for o in list(acc.orders.values()):
                if o.status == "AMO REQ RECEIVED":
                    self._open(o)

    def place(self, user_id: str, variety: str, f: dict, meta: dict | None = None) -> Order:
        """Kite's synchronous validation (a 400 with Kite's message), then admission into the order book."""
        spec = validation.order_spec(self.market.universe, self.market.clock.today(), variety, f)
        return self.admit(user_id, spec, meta)

    def admit(self, user_id: str, spec: OrderSpec, meta: dict | None = None) -> Order:
        """A valid order enters the book: refused while the market is closed (AMOs queue) or, for a delivery sell
        of shares the depository has not authorised, with Kite's 428; then RMS (faults, margin, circuit limits)
        rejects it or it opens and matches."""
        self.roll_day()
        queue_amo = spec.variety == "amo" and not self.market.clock.is_open()
        if spec.variety == "regular" and not self.market.clock.is_open():
            raise OrderError(MARKET_CLOSED)
        acc = self.account(user_id)
        inst = spec.inst
        if spec.product == "CNC" and spec.transaction_type == "SELL":
            acc.depository.roll(self.market.clock.today().isoformat())
            today = acc.positions.get((inst.instrument_token, "CNC"))
            acc.depository.check_sell(inst.instrument_token, spec.quantity, acc.holdings.get(inst.instrument_token),
                                      today.buy_quantity if today else 0)
        o = Order(**{f.name: getattr(spec, f.name) for f in fields(OrderSpec)}, order_id=self._new_id(),
                  user_id=user_id, order_timestamp=self.market.clock.stamp(), meta=dict(meta or {}))
        if o.order_type == "MARKET":  # the OMS converts a protected MARKET order into a LIMIT at the protection price
            ltp = paise(self.market.price(inst))
            pct = fills.AUTO_PROTECTION_PCT if o.market_protection < 0 else o.market_protection
            o.order_type = "LIMIT"
            o.price = fills.protection_price(o.transaction_type, ltp, o.market_protection, self._tick(inst))
            o.tags += ["mktp", f"mktp:{pct:.2f}"]
        acc.orders[o.order_id] = o
        self._history(o, "PUT ORDER REQ RECEIVED")
        self._history(o, "VALIDATION PENDING")
        reason = self.faults.take_reject() or self._rms_reason(acc, o, spec.order_type)
        if reason:
            self._set(o, "REJECTED", reason)
            return o
        o.partial_then_cancel = self.faults.take_partial_then_cancel()
        if queue_amo:
            self._set(o, "AMO REQ RECEIVED")
        else:
            self._open(o)
        return o

    def _rms_reason(self, acc: Account, o: Order, order_type: str) -> str:
        """Why the RMS rejects ``o`` as placed with ``order_type`` (Kite's wording), or ``""``. A protected
        MARKET order's limit is the protection price, so the circuit check is only for orders priced by the user."""
        inst, tt, qty = o.inst, o.transaction_type, o.quantity
        need = risk.order_need(self.market, acc, inst, o.product, qty,
                               o.price or o.trigger_price or paise(self.market.price(inst)), tt)
        avail = self.available(acc)
        if need > avail and not self._reduces(acc, inst, o.product, tt, qty) and \
                not risk.covered_by_holdings(acc, inst.instrument_token, o.product, tt, qty):
            return f"Insufficient funds. Required margin is {need / 100:.2f} but available margin is {avail / 100:.2f}."
        q = self.market.quote(inst)
        if order_type in ("LIMIT", "SL") and o.price < paise(q.lower_circuit):  # Kite's words (gtt_get_order mock)
            return (f"Your order price is lower than the current lower circuit limit of {q.lower_circuit:.2f}. "
                    "Place an order within the daily range.")
        if order_type in ("LIMIT", "SL") and o.price > paise(q.upper_circuit):
            return (f"Your order price is higher than the current upper circuit limit of {q.upper_circuit:.2f}. "
                    "Place an order within the daily range.")
        if order_type in ("SL", "SL-M"):
            return self._stop_error(o, o.trigger_price) or ""
        return ""

    def _stop_error(self, o: Order, trigger: int) -> str | None:
        q = self.market.quote(o.inst)
        return validation.stop_trigger_error(o.transaction_type, trigger, paise(q.last_price), paise(q.lower_circuit),
                                             paise(q.upper_circuit))

    def _open(self, o: Order) -> None:
        self._history(o, "OPEN PENDING")
        o.exchange_order_id = f"1{o.order_id[-15:]}"
        self._set(o, "TRIGGER PENDING" if o.order_type in ("SL", "SL-M") else "OPEN")
        self.match(o)

    def _reduces(self, acc: Account, inst: Instrument, product: str, side: str, qty: int) -> bool:
        pb = acc.positions.get((inst.instrument_token, product))
        held = (pb.buy_quantity - pb.sell_quantity) if pb else 0
        return (side == "SELL" and 0 < qty <= held) or (side == "BUY" and 0 < qty <= -held)

    @staticmethod
    def _tick(inst: Instrument) -> int:
        return paise(inst.tick_size) or 5

    def modify(self, user_id: str, variety: str, order_id: str, f: dict) -> Order:
        self.roll_day()  # an order the day's end expired is not modified into the next day
        o = self.order(user_id, order_id)
        if o.status in TERMINAL:
            raise OrderError(f"Order cannot be modified as it is {o.status.lower()}.", "InputException")
        if o.status not in risk.LIVE:
            raise OrderError("Order cannot be modified as it is being processed. Try later.", "InputException")
        if o.modifications >= MAX_MODIFICATIONS:
            raise OrderError("Maximum allowed order modifications exceeded.", "InputException")
        try:
            qty = int(f["quantity"]) if f.get("quantity") else o.quantity
            price = paise(float(f["price"])) if f.get("price") else o.price
            trigger = paise(float(f["trigger_price"])) if f.get("trigger_price") else o.trigger_price
        except ValueError:
            raise OrderError("Invalid `price` or `quantity`.") from None
        if qty < o.filled_quantity or (o.inst.lot_size > 1 and qty % o.inst.lot_size):
            raise OrderError("Invalid `quantity`.")
        order_type = f["order_type"] if f.get("order_type") in ("LIMIT", "SL", "SL-M") else o.order_type
        if (problem := validation.stop_limit_error(o.transaction_type, order_type, price, trigger)) is not None:
            raise OrderError(problem)
        if order_type in ("SL", "SL-M") and o.status == "TRIGGER PENDING" and \
                (problem := self._stop_error(o, trigger)) is not None:
            raise OrderError(problem)  # a stop moved past the market would fire at once: Kite refuses it
        o.quantity, o.price, o.trigger_price, o.order_type = qty, price, trigger, order_type
        o.modifications += 1
        before = o.status
        self._history(o, "MODIFY VALIDATION PENDING")
        self._history(o, "MODIFY PENDING")
        self._history(o, "MODIFIED")
        if before == "AMO REQ RECEIVED":
            self._set(o, before)
            return o
        self._set(o, "TRIGGER PENDING" if o.order_type in ("SL", "SL-M") and before == "TRIGGER PENDING" else "OPEN")
        self.match(o)
        return o

    def cancel(self, user_id: str, variety: str, order_id: str) -> Order:
        o = self.order(user_id, order_id)
        if o.status in TERMINAL:
            raise OrderError(f"Order cannot be cancelled as it is {o.status.lower()}.", "InputException")
        self._history(o, "CANCEL PENDING")
        o.cancelled_quantity = o.quantity - o.filled_quantity
        self._set(o, "CANCELLED", "Cancelled by user")
        return o

    def order(self, user_id: str, order_id: str) -> Order:
        o = self.account(user_id).orders.get(order_id)
        if o is None:
            raise OrderError("Couldn't find that `order_id`.", "InputException", 400)
        return o

    def _history(self, o: Order, status: str, message: str | None = None) -> None:
        o.status = status
        o.status_message = message
        o.history.append(o.as_kite(o.user_id))

    def _set(self, o: Order, status: str, message: str | None = None) -> None:
        o.exchange_timestamp = self.market.clock.stamp()
        self._history(o, status, message)
        log.info("order %s %s %s %s x%d %s", o.order_id, o.status, o.transaction_type, o.inst.tradingsymbol,
                 o.quantity, message or "", extra={"user_id": o.user_id, "tag": o.tag})
        self.on_order_update(o.user_id, o.as_kite(o.user_id))

    # ---- matching -----------------------------------------------------------------------------

    def match_all(self) -> None:
        """Match every resting order; one that fails to match (logged once) does not hold up the others."""
        if self.faults.hold_fills:
            return
        for acc in self.accounts.values():
            for o in list(acc.orders.values()):
                if o.status in ("OPEN", "TRIGGER PENDING"):
                    what = f"matching order {o.order_id} ({o.inst.tradingsymbol})"
                    try:
                        self.match(o)
                    except Exception:  # noqa: BLE001
                        self.failures.failed(o.order_id, what)
                    else:
                        self.failures.ok(o.order_id, what)

    def match(self, o: Order) -> None:
        if self.faults.hold_fills or not self.market.clock.is_open():
            return
        q = self.market.quote(o.inst)
        ltp = paise(q.last_price)
        side = o.transaction_type
        if o.status == "TRIGGER PENDING":
            if not fills.trigger_hit(side, o.trigger_price, ltp):
                return
            if o.order_type == "SL-M":
                o.price = fills.slm_limit(side, ltp, self._tick(o.inst))
            self._set(o, "OPEN")
        book = q.depth_sell if side == "BUY" else q.depth_buy
        remaining = o.quantity - o.filled_quantity
        if o.partial_then_cancel:
            remaining = max(1, remaining // 2) if o.inst.lot_size <= 1 else max(
                o.inst.lot_size, (remaining // 2) // o.inst.lot_size * o.inst.lot_size)
        done = fills.walk_depth(side, o.price, remaining, ((paise(p), qty) for p, qty, _ in book), o.inst.lot_size)
        for qty, price in done:
            self._fill(o, qty, price)
        filled_now = sum(qty for qty, _ in done)
        if o.filled_quantity >= o.quantity:
            self._set(o, "COMPLETE")
        elif o.partial_then_cancel and o.filled_quantity:
            o.cancelled_quantity = o.quantity - o.filled_quantity
            self._set(o, "CANCELLED", "Partially filled; remaining quantity cancelled by the exchange")
        elif o.validity == "IOC":
            o.cancelled_quantity = o.quantity - o.filled_quantity
            self._set(o, "CANCELLED", "IOC order cancelled: not filled immediately")
        elif filled_now:
            self._set(o, "OPEN")  # partial fill: Kite keeps the order OPEN with filled_quantity > 0

    def _fill(self, o: Order, qty: int, price: int) -> None:
        acc = self.account(o.user_id)
        o.filled_quantity += qty
        o.filled_value += qty * price
        ts = self.market.clock.stamp()
        acc.trades.append(Trade(f"{self.next_trade_seq:08d}", o, qty, price, ts))
        self.next_trade_seq += 1
        pb = acc.positions.setdefault((o.inst.instrument_token, o.product), PositionBook())
        if o.transaction_type == "BUY":
            pb.buy_quantity += qty
            pb.buy_value += qty * price
        else:
            pb.sell_quantity += qty
            pb.sell_value += qty * price
