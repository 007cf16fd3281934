"""The execution engine of one user: signal → risk → orders at the broker → journal → events.

Placement is exactly-once by construction: every order has a deterministic tag derived from its
signal; before anything is placed the journal is checked, and an order whose submit outcome was
lost (UNKNOWN) is looked up at the broker by tag before it is ever placed again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

import msgspec

from execution_worker import orders as o
from execution_worker.journal import ACCEPTED, REFUSED, Journal
from execution_worker.order_gate import OrderGate, OrderGateError
from execution_worker.greeks import net_greeks
from execution_worker.positions import PositionTracker, signed
from execution_worker.risk import RiskManager, context_from
from shared import subjects
from shared.bus import Bus
from shared.kite import errors
from shared.kite.client import KiteClient
from shared.kite.models import Instrument, Order, Trade
from shared.messages import (
    OrderEvent,
    OrderRequest,
    OrderStatus,
    OrderType,
    Product,
    RiskState,
    Signal,
    TransactionType,
    Variety,
    to_paise,
)

log = logging.getLogger("kta.execution")


class Desk:
    """Everything the worker holds for one user while their broker session is live."""

    def __init__(self, user_id: str, bus: Bus, journal: Journal, client: KiteClient, risk: RiskManager,
                 instruments: dict[str, Instrument], market_protection: int, sl_slippage_pct: float,
                 gate: OrderGate | None = None) -> None:
        self.user_id = user_id
        self.bus = bus
        self.journal = journal
        self.client = client
        self.risk = risk
        self.instruments = instruments  # "EXCHANGE:SYMBOL" -> Instrument
        self.market_protection = market_protection
        self.sl_slippage_pct = sl_slippage_pct
        self.gate = gate or OrderGate()  # Kite's per-account order limits
        self.tracker = PositionTracker.from_trades(journal.trades(user_id))
        self.order_changed = asyncio.Condition()
        self.latencies_ms: list[float] = []
        self.in_flight: set[str] = set()  # tags whose submit is awaiting the broker's answer
        self.pnl_anchor = (0, 0, 0, 0)  # broker realised, unrealised; the tracker's at that moment
        self.on_risk: Callable[[Desk, RiskState], Awaitable[None]] | None = None  # the kill switch moved
        self.on_fills: Callable[[Desk], Awaitable[None]] | None = None  # new fills in the tracker

    def inst(self, exchange: str, tradingsymbol: str) -> Instrument | None:
        return self.instruments.get(f"{exchange}:{tradingsymbol}")

    # ---- events -------------------------------------------------------------------------------

    async def publish(self, row: dict, state: str | None = None, message: str = "") -> None:
        ev = OrderEvent(
            user_id=self.user_id, order_id=row.get("order_id") or "", tag=row["tag"],
            signal_id=row.get("signal_id") or "", group_id=row.get("group_id") or "", kind=row.get("kind") or "",
            state=state or row.get("state") or "", status=_status(row.get("status")),
            status_message=message or row.get("status_message") or "", exchange=row["exchange"],
            tradingsymbol=row["tradingsymbol"], instrument_token=row.get("instrument_token") or 0,
            transaction_type=TransactionType(row["transaction_type"]), order_type=OrderType(row["order_type"]),
            product=Product(row["product"]), variety=Variety(row.get("variety") or "regular"),
            quantity=row["quantity"], filled_quantity=row.get("filled_quantity") or 0, price=row.get("price") or 0,
            trigger_price=row.get("trigger_price") or 0, average_price=row.get("average_price") or 0,
            order_timestamp=row.get("order_timestamp") or "", exchange_timestamp=row.get("exchange_timestamp") or "",
            ts=time.time_ns())
        self.journal.record_order_event(ev)
        await self.bus.js_publish(subjects.orders(self.user_id), ev)
        async with self.order_changed:
            self.order_changed.notify_all()

    # ---- placing ------------------------------------------------------------------------------

    async def place(self, req: OrderRequest, strategy_id: str = "") -> str | None:
        """Place ``req`` once. Returns the broker order id, or None if it was refused / is unknown."""
        row = self.journal.order_by_tag(req.tag)
        if row and row.get("order_id"):
            return row["order_id"]
        if req.tag in self.in_flight:  # its first submit has not answered yet: never a second one
            log.warning("order %s is already being submitted", req.tag)
            return None
        self.in_flight.add(req.tag)
        try:
            return await self._place(req, row, strategy_id)
        finally:
            self.in_flight.discard(req.tag)

    async def _place(self, req: OrderRequest, row: dict | None, strategy_id: str) -> str | None:
        if row and row.get("state") in (o.SUBMITTING, o.UNKNOWN):
            found = await self.client.find_order_by_tag(req.tag)
            if found is not None:
                await self.apply(found)
                return found.order_id
        try:
            await self.gate.acquire()
        except OrderGateError as e:
            self.journal.record_order(self.user_id, tag=req.tag, signal_id=req.signal_id, group_id=req.group_id,
                                      kind=req.kind, request=req, state=o.FAILED)
            self.journal.update_order(req.tag, status="REJECTED", status_message=str(e))
            await self.publish(self.journal.order_by_tag(req.tag), o.FAILED, str(e))
            log.warning("order %s refused by the order gate: %s", req.tag, e)
            return None
        self.journal.record_order(self.user_id, tag=req.tag, signal_id=req.signal_id, group_id=req.group_id,
                                  kind=req.kind, request=req, state=o.SUBMITTING)
        if strategy_id:
            self.journal.update_order(req.tag, strategy_id=strategy_id)
        started = time.perf_counter()
        try:
            order_id = await self.client.place_order(
                req.variety.value, req.exchange.value, req.tradingsymbol, req.transaction_type.value, req.quantity,
                req.product.value, req.order_type.value,
                price=_rupees(req.price) if req.order_type in (OrderType.LIMIT, OrderType.SL) else None,
                trigger_price=_rupees(req.trigger_price) if req.trigger_price else None,
                validity=req.validity.value,
                market_protection=req.market_protection if req.order_type in (OrderType.MARKET, OrderType.SL_M)
                else None, tag=req.tag)
        except errors.TooManyRequests as e:  # a 429 is an answer: the order was not taken
            self.journal.update_order(req.tag, state=o.FAILED, status="REJECTED", status_message=e.message)
            await self.publish(self.journal.order_by_tag(req.tag), o.FAILED, f"rate limited: {e.message}")
            log.warning("order %s refused by the broker's rate limit: %s", req.tag, e.message)
            return None
        except errors.NetworkException as e:
            self.journal.update_order(req.tag, state=o.UNKNOWN, status_message=str(e.message))
            log.warning("order %s outcome unknown: %s (reconciliation resolves it by tag)", req.tag, e.message)
            return None
        except errors.KiteError as e:  # OrderError: the broker refused it, with its message
            self.journal.update_order(req.tag, state=o.FAILED, status="REJECTED", status_message=e.message)
            await self.publish(self.journal.order_by_tag(req.tag), o.FAILED, f"{e.error_type}: {e.message}")
            log.warning("order %s refused by the broker: %s", req.tag, e.message)
            return None
        self.latencies_ms.append((time.perf_counter() - started) * 1000)
        self.journal.record_order(self.user_id, tag=req.tag, signal_id=req.signal_id, group_id=req.group_id,
                                  kind=req.kind, request=req, order_id=order_id, state=o.PLACED)
        await self.publish(self.journal.order_by_tag(req.tag), o.PLACED)
        self.bus.spawn(self.confirm(order_id), name=f"confirm:{order_id}")
        return order_id

    async def confirm(self, order_id: str, attempts: int = 8) -> None:
        """A 200 from place only means the OMS took the request: read the order back until it is
        final, so a fill is journaled even if its WebSocket update never arrives."""
        delay = 0.1
        for _ in range(attempts):
            await asyncio.sleep(delay)
            try:
                history = await self.client.order_history(order_id)
            except errors.KiteError as e:
                log.info("confirm %s: %s", order_id, e)
                return
            if history:
                await self.apply(history[-1])
                if OrderStatus.parse(history[-1].status).is_terminal:
                    return
            delay = min(2.0, delay * 2)

    async def modify(self, row: dict, *, quantity: int | None = None, price: int | None = None,
                     trigger_price: int | None = None, order_type: str | None = None) -> bool:
        """Modify an open order (prices in paise) within Kite's 25 modifications per order."""
        if not row.get("order_id") or o.is_terminal(row.get("status") or row.get("state") or ""):
            return False
        try:
            self.gate.modify(row["order_id"])
            await self.gate.acquire()
            await self.client.modify_order(row.get("variety") or "regular", row["order_id"], quantity=quantity,
                                           price=_rupees(price) if price else None, order_type=order_type,
                                           trigger_price=_rupees(trigger_price) if trigger_price else None)
        except (OrderGateError, errors.KiteError) as e:
            log.warning("modify %s refused: %s", row["order_id"], e)
            return False
        return True

    async def cancel(self, row: dict) -> None:
        if not row.get("order_id") or o.is_terminal(row.get("status") or row.get("state") or ""):
            return
        try:
            await self.client.cancel_order(row.get("variety") or "regular", row["order_id"])
        except errors.InputException as e:  # already done at the broker: reconciliation catches up
            log.info("cancel %s: %s", row["order_id"], e.message)

    # ---- signals ------------------------------------------------------------------------------

    async def on_signal(self, sig: Signal) -> None:
        decision = self.journal.signal_decision(sig.id)
        if decision == REFUSED:
            return  # a redelivery of a refused signal: the decision stands
        if decision is None:
            inst = self.inst(sig.exchange.value, sig.tradingsymbol)
            last = to_paise(inst.last_price) if inst and inst.last_price else 0
            underlying, greeks, added = ("", {}, (0.0, 0.0)) if sig.intent == "exit" else await self.greeks(
                [(f"{sig.exchange.value}:{sig.tradingsymbol}", signed(sig.transaction_type, sig.quantity))])
            ctx = context_from(self.tracker, sig, open_orders=len(self.journal.open_orders(self.user_id)),
                               lot_size=inst.lot_size if inst else 1, last_price=sig.price or last,
                               greeks=greeks, signal_greeks=added, underlying=underlying)
            verdict = self.risk.validate_signal(sig, ctx)
            if not verdict.ok:
                self.journal.record_signal(sig, REFUSED, verdict.reason, verdict.code)
                await self._refused(sig, verdict.code, verdict.reason)
                return
            self.journal.record_signal(sig, ACCEPTED)
        if sig.intent == "exit":
            for row in self._protective_of(sig.strategy_id, sig.tradingsymbol):
                await self.cancel(row)
        inst = self.inst(sig.exchange.value, sig.tradingsymbol)
        for req in o.signal_requests(sig, inst, self.market_protection):
            await self.place(req, sig.strategy_id)

    async def greeks(self, legs: list[tuple[str, int]]) -> tuple[str, dict[str, tuple[float, float]],
                                                                  tuple[float, float]]:
        """Net option greeks of the legs' underlying held now, and what the legs add."""
        return await net_greeks(self.client, self.instruments, self.tracker.positions(), legs)

    async def _refused(self, sig: Signal, code: str, reason: str) -> None:
        ev = OrderEvent(user_id=self.user_id, order_id="", signal_id=sig.id, kind=sig.intent, state=o.REFUSED,
                        status_message=f"{code}: {reason}", exchange=sig.exchange.value,
                        tradingsymbol=sig.tradingsymbol, instrument_token=sig.instrument_token,
                        transaction_type=sig.transaction_type, order_type=sig.order_type, product=sig.product,
                        quantity=sig.quantity, ts=time.time_ns())
        await self.bus.js_publish(subjects.orders(self.user_id), ev)
        log.info("signal %s refused: %s %s", sig.id, code, reason, extra={"user_id": self.user_id})

    def _protective_of(self, strategy_id: str, tradingsymbol: str) -> list[dict]:
        return [r for r in self.journal.open_orders(self.user_id)
                if r["kind"] in ("stop_loss", "target") and r.get("tradingsymbol") == tradingsymbol
                and (r.get("strategy_id") or "") == strategy_id]

    # ---- broker order updates -----------------------------------------------------------------

    async def apply(self, order: Order, trades: dict[str, list[Trade]] | None = None) -> bool:
        """Fold one broker view of an order into the journal. Returns False for orders kta doesn't own.
        ``trades`` (order id → the broker's trades, read once for a whole reconciliation pass) saves a
        trade-book call per filled order."""
        row = self.journal.order_by_id(order.order_id) or (self.journal.order_by_tag(order.tag) if order.tag else None)
        if row is None:
            if not o.is_kta_tag(order.tag):
                return False
            row = self._adopt(order)
        status = order.status
        current = row.get("status") or row.get("state") or ""
        if not o.can_move(current, status):
            log.warning("order %s: refused transition %s -> %s", order.order_id, current, status)
            return True
        filled_before = row.get("filled_quantity") or 0
        self.journal.update_order(row["tag"], order_id=order.order_id, status=status, state=status,
                                  status_message=order.status_message or "", filled_quantity=order.filled_quantity,
                                  average_price=to_paise(order.average_price),
                                  order_timestamp=order.order_timestamp or "",
                                  exchange_timestamp=order.exchange_timestamp or "")
        row = self.journal.order_by_tag(row["tag"])
        if o.is_terminal(status):
            self.gate.forget(order.order_id)
        if order.filled_quantity > filled_before:
            await self.journal_fills(row, None if trades is None else trades.get(order.order_id, []))
        if status != current or order.filled_quantity != filled_before:
            await self.publish(row)
            if status == OrderStatus.COMPLETE.value:
                await self._on_complete(row)
        return True

    def _adopt(self, order: Order) -> dict:
        """An order with kta's tag that the journal lost (a crash between placing and recording)."""
        req = OrderRequest(user_id=self.user_id, exchange=order.exchange, tradingsymbol=order.tradingsymbol,
                           instrument_token=order.instrument_token, transaction_type=order.transaction_type,
                           order_type=order.order_type, quantity=max(1, order.quantity), product=order.product,
                           price=to_paise(order.price), trigger_price=to_paise(order.trigger_price), tag=order.tag,
                           kind="adopted")
        self.journal.record_order(self.user_id, tag=order.tag, signal_id="", group_id="", kind="adopted", request=req,
                                  order_id=order.order_id, state=order.status, status=order.status)
        log.warning("adopted order %s (tag %s) found at the broker", order.order_id, order.tag)
        return self.journal.order_by_tag(order.tag)

    async def journal_fills(self, row: dict, known: list[Trade] | None = None) -> None:
        """Every fill of the order from the broker's trade book, journaled once, into the tracker.
        ``known`` trades are used when they account for the whole filled quantity."""
        if known is None or sum(t.quantity for t in known) < (row.get("filled_quantity") or 0):
            known = await self.client.order_trades(row["order_id"])
        for t in known:
            new = self.journal.record_trade(
                self.user_id, trade_id=t.trade_id, order_id=t.order_id, exchange=t.exchange,
                tradingsymbol=t.tradingsymbol, instrument_token=t.instrument_token,
                transaction_type=t.transaction_type, quantity=t.quantity, price=to_paise(t.average_price),
                fill_timestamp=t.fill_timestamp or "", product=t.product, strategy_id=row.get("strategy_id") or "",
                signal_id=row.get("signal_id") or "", group_id=row.get("group_id") or "")
            if new:
                self.tracker.on_fill(strategy_id=row.get("strategy_id") or "", exchange=t.exchange,
                                     tradingsymbol=t.tradingsymbol, transaction_type=t.transaction_type,
                                     quantity=t.quantity, price=to_paise(t.average_price),
                                     instrument_token=t.instrument_token, product=t.product,
                                     timestamp=t.fill_timestamp or "")
        if self.on_fills is not None:
            await self.on_fills(self)
        await self.feed_pnl("fill")

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

    async def _on_complete(self, row: dict) -> None:
        if row["kind"] == "entry" and row.get("signal_id"):
            sig = self._signal(row["signal_id"])
            if sig is not None and (sig.stop_loss or sig.target) and row["tag"].endswith("0000"):
                inst = self.inst(sig.exchange.value, sig.tradingsymbol)
                filled = sum(r.get("filled_quantity") or 0 for r in self.journal.orders_of_signal(sig.id)
                             if r["kind"] == "entry")
                for req in o.protective_requests(sig, filled, inst, self.sl_slippage_pct):
                    await self.place(req, sig.strategy_id)
        elif row["kind"] in ("stop_loss", "target"):  # one-cancels-other
            for sibling in self.journal.orders_of_signal(row["signal_id"]):
                if sibling["kind"] in ("stop_loss", "target") and sibling["tag"] != row["tag"]:
                    await self.cancel(sibling)

    def _signal(self, signal_id: str) -> Signal | None:
        rec = self.journal.signal(signal_id)
        if rec is None or rec.get("type") == "signal_group":
            return None
        try:
            return msgspec.json.decode(rec["payload"], type=Signal)
        except (msgspec.DecodeError, KeyError):
            return None


def _status(value: str | None) -> OrderStatus | None:
    try:
        return OrderStatus.parse(value) if value else None
    except ValueError:
        return None


def _rupees(paise: int):
    from shared.messages import to_rupees

    return to_rupees(paise)
