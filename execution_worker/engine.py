"""The desk of one user: the order book, the position book, and the one place an order changes.

Every source of truth — a submit answer, a WebSocket update, a read-back, a group wait, a
reconciliation pass, a fill from the trade book, a cancel kta asks for — becomes an event for
``Desk.record``, which applies it to the order (``shared.trading.order``), journals the order and
publishes what changed. Fills go to the journal once each and from there into the position book.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from datetime import time as dt_time
from typing import Any

from msgspec.structs import astuple

from execution_worker import adoption, closed_day, fill_journal
from execution_worker.alerts import alert
from execution_worker.journal import Journal
from execution_worker.order_gate import OrderGate
from execution_worker.order_reads import OrderReads
from execution_worker.outcomes import Outcomes
from execution_worker.decisions_first import DecisionsFirst
from execution_worker.prices import Prices
from execution_worker.trade_reads import TradeReads
from shared import eager, subjects
from shared.bus import Bus
from shared.exchange_clock import ExchangeClock
from shared.kite import waits
from shared.kite.client import KiteClient
from shared.kite.models import Instrument, Order as KiteOrder, Trade
from shared.messages import (OrderEvent, OrderRequest, OrderStatus, OrderType, Product, RiskState, Signal,
                             SignalGroup, Variety)
from shared.trading import planning, protection
from shared.trading.book import OrderBook
from shared.trading.order import (
    Applied,
    BrokerUpdate,
    CancelRequested,
    HeldAmended,
    Order,
    OrderEventAny,
    OrderState,
    SubmitLost,
    broker_update,
    is_terminal,
)
from shared.trading.positions import PositionTracker
from shared.trading.protection import position_key
from shared.trading.risk import RiskManager

log = logging.getLogger("kta.execution")
QUIET = (OrderState.SUBMITTING,)  # transient states journaled but not published (the hot path)
WS_QUIET_AFTER = 300.0  # s without an order update relayed from the broker's WebSocket: read back instead
SIGNAL_KINDS = ("entry", "exit", "manual")  # orders a strategy waits on (its signal is in flight)


class DeskClosed(Exception):
    """The desk was closed under work that still held it (its user's partition moved to another worker, or
    its broker session ended): nothing more goes to the broker from it; the user's current desk takes over."""

    def __init__(self, user_id: str, reason: str) -> None:
        super().__init__(f"the desk of {user_id} was closed: {reason}")
        self.reason = reason


class Desk:
    """Everything the worker holds for one user while their broker session is live."""

    def __init__(self, user_id: str, bus: Bus, journal: Journal, client: KiteClient, risk: RiskManager,
                 instruments: dict[str, Instrument], market_protection: int, sl_slippage_pct: float,
                 gate: OrderGate | None = None, prices: Prices | None = None,
                 first: DecisionsFirst | None = None) -> None:
        self.user_id = user_id
        self.bus = bus
        self.journal = journal
        self.client = client
        self.risk = risk
        self.instruments = instruments  # "EXCHANGE:SYMBOL" -> Instrument
        self.market_protection = market_protection
        self.sl_slippage_pct = sl_slippage_pct
        self.gate = gate or OrderGate()  # Kite's per-account order limits
        self.margin_check_above = 100_000_00  # paise: entries worth this much are margin-checked (margin_check.py)
        self.exchange = ExchangeClock()  # the worker's (live.Desks): the exchange's day and time of day
        self.prices = prices or Prices(bus, self.exchange)  # last prices and circuit bands (the worker's desks')
        self.first = first or DecisionsFirst()  # signals being decided hold follow-up work back (the worker's)
        self.mis_square_off_at: dt_time | None = None  # kta's own MIS square-off (intraday.py; None: off)
        self.mis_closed_at = 0.0  # monotonic: its last run
        self.mis_tries = 0  # its runs in a row that left MIS open
        self.book = OrderBook(journal.load_orders(user_id, journal.today()))
        self.tracker = PositionTracker.from_trades(journal.trades(user_id))
        self.outcomes = Outcomes(bus, journal, user_id, self.tracker)
        self.order_changed = asyncio.Condition()
        self.lock = asyncio.Lock()  # one decision at a time: signals, manual orders, square-offs, stop
        self.sending: dict[asyncio.Task, frozenset[str]] = {}  # decided signals' broker work, its products (exclusive())
        self.exiting: dict[str, asyncio.Lock] = {}  # position key -> its exits, one clearing it at a time
        self.strategy_busy: dict[str, asyncio.Future] = {}  # strategy -> its group placing (or a signal waiting for one)
        self.latencies_ms: list[float] = []
        self.timings: deque[tuple] = deque(maxlen=5000)  # tick → order of recent signals (shared/kite/waits.py)
        self.in_flight: dict[str, asyncio.Future] = {}  # tags whose submit is awaiting the broker's answer -> it
        # entries from the strategies stop at Stop (until Start) and, at a square-off, those sent before it
        self.entries_stopped = ""  # why, while stopped
        self.entries_after_ns = 0  # an entry created before this (a square-off's start) is stale
        self.unlisted: dict[str, int] = {}  # tag -> reconciliations in a row whose broker book lacked it
        self.reconciled_at = 0.0  # monotonic start of the last reconciliation that read every order and fill
        self.pnl_anchor = (0, 0, 0, 0)  # broker realised, unrealised; the tracker's at that moment
        self.on_risk: Callable[[Desk, RiskState], Awaitable[None]] | None = None  # the kill switch moved
        self.on_fills: Callable[[Desk], Awaitable[None]] | None = None  # new fills in the tracker
        self.on_change: Callable[[Order, Applied], Awaitable[None]] | None = None  # an order moved
        self.on_applied: Callable[[Order, Applied], None] | None = None  # the same, at once (no await before it)
        self.protector = None  # execution_worker.protector.Protector, once the desk is opened live
        self.held_sells = None  # execution_worker.authorisation.HeldSells: delivery sells awaiting eDIS (428)
        self.edis = None  # execution_worker.edis_ahead.AuthoriseAhead: eDIS asked before the GTT stops need it
        self.ws_heard = 0.0  # monotonic: the last order update the broker's WebSocket relayed (0: none, or it dropped)
        self.trade_reads = TradeReads(lambda: self.client, bus, user_id)
        self.order_reads = OrderReads(lambda: self.client, bus, user_id)
        self.closed = ""  # why, once closed (live.Desks.close): work still holding it must not reach the broker

    @property
    def updates_flowing(self) -> bool:
        """The broker's WebSocket is relaying this user's order updates (the ticker worker says so by
        relaying them): waiting for an update then beats reading the order back on the hot path."""
        return self.ws_heard > 0 and time.monotonic() - self.ws_heard < WS_QUIET_AFTER

    @contextlib.asynccontextmanager
    async def exclusive(self, product: str = ""):
        """The desk to oneself: no decision in progress and none of the decided signals' orders still on
        their way — a group's legs included, filled or rolled back (a square-off, a stop or a halt acts on the
        book as those leave it). ``product``: only the work that trades it is waited for (kta's MIS square-off
        at the cutoff does not wait for an NRML condor's fills: the CI run saw it 12 s late behind one)."""
        async with self.lock:
            while waiting := [t for t, products in self.sending.items()
                              if not product or not products or product in products]:
                await asyncio.wait(waiting)
            yield

    def send(self, work: Coroutine[Any, Any, Any], products: Iterable[str] = ()) -> asyncio.Task:
        """Run a decided signal's broker work (``signals.decide``, ``order_group.decide``) beside the user's next
        decisions, its first step at once (its order handed over now, not behind a bar's other decisions: eager.py);
        ``products``: what its orders trade (empty: any)."""
        task = eager.start(work)
        waits.pass_on(task)
        self.sending[task] = frozenset(products)
        task.add_done_callback(lambda done: self.sending.pop(done, None))
        return task

    def entry_closed(self, sig: Signal | SignalGroup) -> tuple[str, str] | None:
        """(code, reason) when a strategy's entry may not go out now: trading was stopped, or it was
        sent before a square-off (queued behind it, it would reopen what was just closed)."""
        if sig.intent != "entry":
            return None
        if self.entries_stopped:
            return "LIVE_STOPPED", self.entries_stopped
        if sig.created_at and sig.created_at < self.entries_after_ns:
            return "SQUARED_OFF", "sent before the square-off that followed it: not placed"
        return None

    def inst(self, exchange: str, tradingsymbol: str) -> Instrument | None:
        return self.instruments.get(f"{exchange}:{tradingsymbol}")

    # ---- the one place an order changes ------------------------------------------------------

    def new_order(self, req: OrderRequest, strategy_id: str = "", journal: bool = True) -> Order:
        """A new order in the book, journaled (``journal`` False: the caller journals it in the same commit)."""
        order = Order.from_request(req, strategy_id=strategy_id, created=self.journal.now(), day=self.journal.today())
        self.book.add(order)
        with self.journal.together():
            self.remember_contract(order.exchange, order.tradingsymbol)
            if journal:
                self.journal.save_order(order, self.role(order))
        return order

    def remember_contract(self, exchange: str, tradingsymbol: str) -> None:
        """A future or option kta trades, journaled as today's list shows it: after its expiry the list no longer
        has it, and its settlement needs its expiry, strike and underlying (``CrossCheck._settle_expired``). At the
        order, not at a positions pass: a leg filled after its expiry day's last pass was known to none."""
        inst = self.inst(exchange, tradingsymbol)
        if inst is not None and inst.expiry is not None:
            self.journal.remember_contract(inst)

    def role(self, order: Order) -> str:
        """What a protective order is now (stop or target, judged against its position's stop): shown to the trader."""
        if not order.is_protective:
            return ""
        plan = self.protector.plans.get(position_key(order.strategy_id, order.exchange, order.tradingsymbol)) \
            if self.protector is not None else None
        return protection.role(order, plan.stop if plan is not None else 0)

    async def record(self, order: Order, event: OrderEventAny, notify: bool = True) -> Applied:
        """Apply ``event`` to ``order``; journal and publish what changed. ``notify`` False leaves the
        reactions (outcomes, protection) to the caller, who first journals the fills."""
        applied, news, moved = self.apply(order, event)
        if news is not None:
            await self._tell(news)
        if moved and notify:
            await self.react(order, applied)
        return applied

    def apply(self, order: Order, event: OrderEventAny) -> tuple[Applied, OrderEvent | None, bool]:
        """``record``'s first half, no await: the event applied, the order's row (and its event) journaled — one commit,
        or the caller's ``journal.together``'s. Returns what it did, the event to tell (or None), whether it moved."""
        before = order.state
        terms = (order.quantity, order.price, order.trigger_price, order.order_type)
        # a broker view that changes nothing (every order of the day, read back by each reconciliation
        # pass) is not written again: 8 users' passes re-wrote hundreds of rows each at once every 30 s
        seen = astuple(order) if isinstance(event, BrokerUpdate) else None
        applied = order.apply(event)
        self.book.touch(order)  # a settled order that changed is asked about again (OrderBook._open)
        if applied.ok and applied.state_changed and self.on_applied is not None:
            self.on_applied(order, applied)
        if not applied.ok:
            log.warning("order %s: refused transition %s -> %s", order.order_id or order.tag, before,
                        getattr(event, "state", None) or type(event).__name__, extra={"user_id": self.user_id})
            return applied, None, False
        if not (applied.state_changed or applied.filled or applied.journaled
                or isinstance(event, (CancelRequested, HeldAmended)) or (seen is not None and seen != astuple(order))):
            return applied, None, False
        if isinstance(event, BrokerUpdate):  # its stamp moves the exchange's clock, read back as an update would
            self.exchange.heard_stamp(event.exchange_timestamp)
        self.book.indexed(order)
        modified = terms != (order.quantity, order.price, order.trigger_price, order.order_type)
        with self.journal.together():  # the order's row and its event: one commit
            self.journal.save_order(order, self.role(order))
            # a modification the broker took is news too (the trader's order book)
            news = self._event(order) if (applied.state_changed or applied.filled or modified) \
                and order.state not in QUIET else None
        return applied, news, True

    async def react(self, order: Order, applied: Applied) -> None:
        """The reactions to what one event did (``applied.state``: the state it left the order in; an event
        applied by another task while this one published may have moved the order on, and reacts itself)."""
        if not (applied.state_changed or applied.filled):
            return
        if applied.state_changed and is_terminal(applied.state) and order.kind in SIGNAL_KINDS:
            await self._ended(order)
        if self.on_change is not None:
            await self.on_change(order, applied)

    async def _ended(self, order: Order) -> None:
        """A strategy's order that ended without filling completely: the strategy hears it."""
        common = dict(strategy_id=order.strategy_id, signal_id=order.signal_id, group_id=order.group_id,
                      order_kind=order.kind, exchange=order.exchange, tradingsymbol=order.tradingsymbol,
                      instrument_token=order.instrument_token, transaction_type=order.transaction_type)
        if order.state is OrderState.CANCELLED and order.filled_quantity < order.quantity:
            await self.outcomes.emit(f"cancelled:{order.tag}", kind="cancelled",
                                     quantity=order.quantity - order.filled_quantity,
                                     reason=order.status_message, **common)
        elif order.state in (OrderState.REJECTED, OrderState.FAILED):
            await self.outcomes.emit(f"rejected:{order.tag}", kind="rejected", quantity=order.quantity,
                                     code=order.failure or "REJECTED", reason=order.status_message, **common)
            await alert(self.bus, self.user_id, "order_rejected",
                        f"{order.tradingsymbol}: {order.kind} order {order.status.lower() or 'rejected'}",
                        f"{order.transaction_type.value} {order.quantity} {order.tradingsymbol} ({order.strategy_id or 'manual'}"
                        f"): {order.status_message or order.failure or 'rejected'}", key=f"rejected:{order.tag}",
                        clock=self.exchange)

    async def on_broker(self, kite_order: KiteOrder, trades: dict[str, list[Trade]] | None = None) -> bool:
        """Fold one broker view of an order into the book. False for orders kta doesn't own.
        ``trades`` (order id → the broker's trades, read once for a whole reconciliation pass) saves
        a trade-book call per filled order."""
        order = self.book.find(kite_order.order_id, kite_order.tag)
        if order is None and self.protector is not None:
            order = self.protector.gtts.adopt(kite_order)  # a kta GTT's fired leg (it carries no tag)
        if order is None:
            if not planning.is_kta_tag(kite_order.tag):
                return False
            order = self._adopt(kite_order)
        applied = await self.record(order, broker_update(kite_order, time.time_ns()), notify=False)
        if applied.ok and order.unjournaled:
            await fill_journal.journal_fills(self, order, None if trades is None else trades.get(order.order_id, []))
        await self.react(order, applied)
        return True

    def _adopt(self, kite_order: KiteOrder) -> Order:
        """An order with kta's tag that the journal lost (a crash between placing and recording): adoption.py."""
        req, strategy_id = adoption.request_for(self.journal, self.user_id, kite_order)
        log.warning("adopted order %s (tag %s) found at the broker", kite_order.order_id, kite_order.tag,
                    extra={"user_id": self.user_id})
        order = self.new_order(req, strategy_id)
        order.apply(SubmitLost(reason="found at the broker: its submit was never journaled"))
        return order

    def of_a_closed_day(self, order: Order) -> bool:
        return closed_day.of_a_closed_day(order, self.journal.today())

    async def trades_of(self, order_id: str) -> list[Trade]:
        return await self.trade_reads.of(order_id)

    # ---- events out ---------------------------------------------------------------------------

    async def publish(self, order: Order, state: str = "", message: str = "") -> None:
        await self._tell(self._event(order, state, message))

    def _event(self, order: Order, state: str = "", message: str = "") -> OrderEvent:
        """The order's event as it stands, journaled (to be told: ``_tell``)."""
        ev = OrderEvent(
            user_id=self.user_id, order_id=order.order_id, tag=order.tag, signal_id=order.signal_id,
            group_id=order.group_id, kind=order.kind, role=self.role(order), state=state or order.state.value,
            status=_status(order.status), status_message=message or order.status_message, exchange=order.exchange,
            tradingsymbol=order.tradingsymbol, instrument_token=order.instrument_token,
            transaction_type=order.transaction_type, order_type=OrderType(order.order_type),
            product=Product(order.product), variety=Variety(order.variety), quantity=order.quantity,
            filled_quantity=order.filled_quantity, pending_quantity=order.remaining,
            cancelled_quantity=order.quantity - order.filled_quantity if order.state is OrderState.CANCELLED else 0,
            price=order.price, trigger_price=order.trigger_price, average_price=order.average_price,
            order_timestamp=order.order_timestamp, exchange_timestamp=order.exchange_timestamp, ts=time.time_ns())
        self.journal.record_order_event(ev)
        return ev

    async def _tell(self, ev: OrderEvent) -> None:
        async with self.order_changed:  # journaled: a waiter (an exit behind its stop's cancel) goes on now
            self.order_changed.notify_all()
        # stored by KTA_ORDERS like any publish on its subject, its ack not awaited: the event is journaled already,
        # the stream has no durable reader (the gateway streams the subject), and an awaited ack cost ~190 us of CPU
        # an event, 4.6 events a signal (bench/js_publish.py, issue #18) — and an order's hot path a round trip each
        await self.bus.publish(subjects.orders(self.user_id), ev)

    # ---- day P&L for the kill switch ----------------------------------------------------------

    def anchor_pnl(self, realised: int, unrealised: int) -> None:
        """The broker's day P&L just read: fills and ticks move the kill switch from here by the
        change in kta's own book, so every source measures the same day P&L."""
        self.pnl_anchor = (realised, unrealised, self.tracker.realised, self.tracker.unrealised)

    async def feed_pnl(self, source: str) -> None:
        """Day P&L to the kill switch after a fill or a tick (O(1): the tracker keeps running totals)."""
        realised, unrealised, book_realised, book_unrealised = self.pnl_anchor
        state = self.risk.on_pnl(realised + self.tracker.realised - book_realised,
                                 unrealised + self.tracker.unrealised - book_unrealised, source, self.tracker.exposure)
        if state is not None and self.on_risk is not None:
            await self.on_risk(self, state)


def _status(value: str) -> OrderStatus | None:
    try:
        return OrderStatus.parse(value) if value else None
    except ValueError:
        return None
