"""execution_worker: signals in, orders out, fills journaled (``kta worker execution``)."""

from __future__ import annotations

import asyncio
import logging
import time

import msgspec

from execution_worker import controls, intraday, order_group, signals
from execution_worker.journal import Journal
from execution_worker.journal_pages import book_page, carried_positions
from execution_worker.engine import Desk, DeskClosed
from execution_worker.live import Desks
from execution_worker.outcomes import Outcomes, strategy_positions
from execution_worker.reconcile import reconcile
from shared import messages as m
from shared import partition, service, subjects
from shared.broker_sessions import SessionStoreUnavailable
from shared.bus import Bus
from shared.exchange_clock import ExchangeClock
from shared.config import Settings
from shared.kite import waits
from shared.kite.models import Order, convert
from shared.market_calendar import CALENDAR
from shared.trading.positions import PositionTracker
from shared.trading.summary import execution_summary, journal_summary, open_position_count

log = logging.getLogger("kta.execution")
NO_BROKER = m.Error(code="broker_not_connected", message="Connect your Kite account first.")


class ExecutionWorker:
    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.settings = settings
        self.clock = ExchangeClock()  # the trading day and time of day the exchange is on (not the machine's)
        self.journal = Journal(settings.data_path / "journal.db", day_clock=self.clock.now)
        self.desks = Desks(bus, settings, self.journal, self.clock)

    async def start(self) -> "ExecutionWorker":
        s = self.settings
        await asyncio.to_thread(CALENDAR.load)  # the end of day and the MIS square-off ask it on the loop
        # users are partitioned across execution workers (shared/partition.py): only the owner of a
        # user's partition consumes their streams and answers their commands
        every = subjects.ANY
        # the journal is this worker's: restarted on it, it is the same instance and resumes its partitions at
        # once (a SIGKILLed worker's leases would otherwise hold its users' protection back for up to 6 s)
        self.identity = partition.restartable_instance(s.data_path / "execution.lock")
        self.parts = await partition.Partitions(self.bus, "execution", [
            partition.Feed(subjects.STREAM_SIGNALS, "execution-signals", subjects.signals(every), m.AnySignal,
                           self.on_signal, batch=16, per_user=True),
            partition.Feed(subjects.STREAM_BROKER, "execution-order-updates", subjects.order_updates(every),
                           m.BrokerOrderUpdate, self.on_order_update, batch=64, per_user=True),
            partition.Feed(subjects.STREAM_BROKER, "execution-broker-events", subjects.broker_events(every),
                           m.BrokerEvent, self.on_broker_event, batch=16),
        ], on_acquire=self.acquire_partition, on_release=self.release_partition,
            instance=self.identity[0] if self.identity else "", expected=s.execution_workers).start()
        # (reads of a partition changing hands, answered by neither copy meanwhile, are answered as it is claimed)
        await self.bus.serve(subjects.cmd_wildcard("live"), self.on_live, accept=self.parts.owns,
                             missed=self.parts.missed)
        for svc in ("execution", "risk", "journal"):
            await self.bus.serve(subjects.cmd_wildcard(svc), self.on_command, accept=self.parts.owns,
                                 missed=self.parts.missed)
        log.info("execution worker ready (journal %s, group timeout %ss)", s.data_path / "journal.db",
                 s.group_fill_timeout)
        return self

    # ---- streams ------------------------------------------------------------------------------

    async def on_signal(self, sig: m.Signal | m.SignalGroup, msg) -> asyncio.Task | None:
        self.clock.heard(sig.tick_ts)
        desk = await self.desks.desk(sig.user_id)
        if desk is None:
            if self.journal.record_signal(sig, "refused", "no live broker session", "BROKER_NOT_CONNECTED"):
                log.warning("signal %s refused: no broker session for %s", sig.id, sig.user_id)
            tracker = PositionTracker.from_trades(self.journal.trades(sig.user_id))
            await Outcomes(self.bus, self.journal, sig.user_id, tracker).emit(
                f"refused:{sig.id}", kind="refused", strategy_id=sig.strategy_id,
                **({"signal_id": sig.id} if isinstance(sig, m.Signal) else {"group_id": sig.id}),
                code="BROKER_NOT_CONNECTED", reason="no live broker session: connect Kite")
            return
        with waits.started(sig.tick_received_at or time.time_ns(), lambda *row: desk.timings.append(row)), \
                desk.first.decision():
            waits.stage("stored", _stored_ns(msg))
            return await self._decide(desk, sig)

    async def _decide(self, desk, sig: m.Signal | m.SignalGroup) -> asyncio.Future | None:
        """The decision, one at a time per user; a decided signal's orders then go to the broker beside
        the user's next decisions, and its message is acked once they are there (the returned task). A
        signal of a strategy whose group is still placing is decided once that group has ended, on what it
        filled (an exit judged before would sell the wings of shorts still to come), in a task of its own:
        the user's other strategies are decided meanwhile."""
        behind = desk.strategy_busy.get(sig.strategy_id)
        if behind is not None and not behind.done():
            later = asyncio.ensure_future(waits.carried(self._decide_after(behind, desk, sig)))
            desk.strategy_busy[sig.strategy_id] = later  # the strategy's next signal waits for this one
            return later
        return await self._decide_now(desk, sig)

    async def _decide_after(self, behind: asyncio.Future, desk, sig: m.Signal | m.SignalGroup) -> None:
        await asyncio.wait([behind])
        with desk.first.decision():
            sending = await self._decide_now(desk, sig)
        if sending is not None:
            await sending

    async def _decide_now(self, desk, sig: m.Signal | m.SignalGroup) -> asyncio.Task | None:
        if desk.lock.locked():  # held by a command (a stop, a square-off) that may wait for order updates
            with desk.first.aside():
                await desk.lock.acquire()
        else:
            await desk.lock.acquire()
        try:  # one decision at a time per user: signals, manual orders, square-offs
            waits.stage("locked")
            closed = desk.entry_closed(sig) or intraday.refused_entry(desk, sig)
            if closed is not None and self.journal.signal_decision(sig.id) is None:
                self.journal.record_signal(sig, "refused", closed[1], closed[0])
                await signals.refused(desk, sig, *closed)
                return None
            if isinstance(sig, m.SignalGroup):  # its legs' fills are waited for outside the lock
                sending = await order_group.decide(desk, sig, self.settings.group_fill_timeout)
            else:
                sending = await signals.decide(desk, sig)
            waits.stage("decided")
        finally:
            desk.lock.release()
        if sending is None:
            return None
        group = isinstance(sig, m.SignalGroup)
        task = desk.send(waits.carried(sending), [str(leg.product) for leg in sig.legs] if group else [str(sig.product)])
        busy = desk.strategy_busy.get(sig.strategy_id)
        if group and (busy is None or busy.done()):  # (decided late, its own waiting task holds the place)
            desk.strategy_busy[sig.strategy_id] = task
        return task

    async def on_order_update(self, update: m.BrokerOrderUpdate, msg) -> None:
        await self.desks.first.follow_up()  # after the signals being decided: their orders go first
        desk = await self.desks.desk(update.user_id)
        if desk is not None:
            order = convert(update.order, Order)
            if time.time_ns() - update.received_at < 60e9:  # not a replay: the WebSocket relays updates now
                desk.ws_heard = time.monotonic()
                self.clock.heard_stamp(order.exchange_timestamp or order.order_timestamp)
            await desk.on_broker(order)

    async def on_broker_event(self, ev: m.BrokerEvent, msg) -> None:
        if ev.kind in ("disconnected", "stopped") and ev.user_id in self.desks.desks:
            self.desks.desks[ev.user_id].ws_heard = 0.0  # no updates coming: read orders back meanwhile
        if ev.kind == "reconnected" and ev.user_id in self.desks.desks:
            await reconcile(self.desks.desks[ev.user_id])  # updates missed while disconnected
        elif ev.kind == "token_expired":
            await self.desks.close(ev.user_id, "broker session expired")

    # ---- commands -----------------------------------------------------------------------------

    async def command_desk(self, user_id: str) -> Desk | m.Error:
        """The user's desk, or what a command is answered without one: no session (connect Kite), or a
        session store that did not answer (the gateway's 503: try again; never "connect Kite")."""
        try:
            desk = await self.desks.desk(user_id)
        except SessionStoreUnavailable as e:
            return m.Error(code=e.code, message=str(e))
        except DeskClosed as e:
            return moved(e.reason)
        return NO_BROKER if desk is None else desk

    async def on_desk(self, cmd, user_id: str, act) -> m.Ok | m.Error:
        """``act(desk)`` on the user's desk. The desk closed under it (the user's partition lease was lost
        mid-command: its Kite client is closed) is answered ``desk_moved``, never ``internal``."""
        desk = await self.command_desk(user_id)
        if isinstance(desk, m.Error):
            return desk
        try:
            return await act(desk)
        except Exception as e:
            if not desk.closed:
                raise
            log.warning("%s of %s stopped: its desk was closed (%s): %r", type(cmd).__name__, user_id, desk.closed, e,
                        extra={"user_id": user_id})
            return moved(desk.closed)

    async def on_live(self, cmd, user_id: str, msg) -> m.Ok | m.Error:
        return await self.on_desk(cmd, user_id, lambda desk: self._live(cmd, user_id, desk))

    async def _live(self, cmd, user_id: str, desk: Desk) -> m.Ok | m.Error:
        match cmd:
            case m.StartLive():
                desk.entries_stopped = ""
                result = await reconcile(desk)
                self.desks.start_loops(user_id)
                return m.Ok(data={"reconcile": msgspec.to_builtins(result)})
            case m.StopLive():
                desk.entries_stopped = "live trading was stopped: Start again to trade"
                async with desk.exclusive():
                    stopped = await self.desks.stop(desk, cmd)
                return m.Ok(data={**stopped, "execution": self.execution(user_id)})
        return m.Error(code="unsupported", message=f"{type(cmd).__name__} is not a live command")

    async def on_command(self, cmd, user_id: str, msg) -> m.Ok | m.Error:
        j = self.journal
        match cmd:  # the journal's answers: no broker session needed
            case m.GetOrders() | m.GetTrades():
                return book_page(j, user_id, cmd)
            case m.GetCarried():
                return m.Ok(data=carried_positions(j, user_id, cmd.day or j.today()))
            case m.GetStrategyPositions():
                return m.Ok(data=strategy_positions(j, user_id, cmd.strategy_id))
            case m.GetExecutionSummary():
                return m.Ok(data=self.execution(user_id, cmd.timings, cmd.day or None))
            case m.GetJournal():
                return m.Ok(data={"trades": j.trades(user_id, cmd.day or None, cmd.limit),  # bounded in the query
                                  "signals": j.signals(user_id, cmd.day or None, cmd.limit),
                                  "risk_events": j.risk_events(user_id, cmd.day or None, cmd.limit)})
            case m.GetAudit():
                audit = j.audit(cmd.id)
                mine = audit and ((audit["signal"] or {}).get("user_id") == user_id or
                                  any(o["user_id"] == user_id for o in audit["orders"]))
                return m.Ok(data=audit) if mine else m.Error(code="not_found", field="id",
                                                             message=f"nothing journaled as {cmd.id}")
            case m.GetJournalSummary():
                summary = (journal_summary(j.trades_closing_on(user_id, cmd.day), cmd.day) if cmd.day
                           else journal_summary(j.trades(user_id)))
                return m.Ok(data=msgspec.to_builtins(summary))
        risk = await self.on_risk_command(cmd, user_id)
        if risk is not None:
            return risk
        return await self.on_desk(cmd, user_id, lambda desk: self._broker_command(cmd, desk))

    async def _broker_command(self, cmd, desk: Desk) -> m.Ok | m.Error:
        match cmd:
            case m.GetPositions():
                return m.Ok(data=msgspec.to_builtins(await self.desks.positions(desk)))
            case m.Reconcile():
                return m.Ok(data=msgspec.to_builtins(await reconcile(desk, cmd.cancel_open_orders)))
            case m.SquareOffAll():  # flat and staying flat: entries stay off until the trader resets the switch
                if (halted := desk.risk.kill_switch.halt(f"square off all: {cmd.reason}")) is not None:
                    await self.desks.announce(desk, halted)  # not the halt's own cancels: this square-off is it
                async with desk.exclusive():
                    done = await controls.square_off(desk, cmd.reason)
                return m.Ok(data={**done, "kill_switch": desk.risk.snapshot().state.value})
            case m.PlaceOrder():
                async with desk.lock:
                    return await controls.place_order(desk, cmd)
            case m.ModifyOrder():
                return await controls.modify_order(desk, cmd)
            case m.CancelOrder():
                return await controls.cancel_order(desk, cmd)
        return m.Error(code="unsupported", message=f"{type(cmd).__name__} is not an execution command")

    async def on_risk_command(self, cmd, user_id: str) -> m.Ok | m.Error | None:
        """The kill switch and the limits: answered with or without a broker session."""
        risk = self.desks.risk(user_id)
        match cmd:
            case m.GetRiskSummary():
                snap = self.desks.snapshots.get(user_id)
                summary = risk.summary(position_count=open_position_count(snap.positions, snap.protection) if snap else 0,
                                       trade_count=self.journal.trade_count(user_id))
                return m.Ok(data={**msgspec.to_builtins(summary), "state": msgspec.to_builtins(risk.snapshot())})
            case m.GetRiskLimits():
                return m.Ok(data={"limits": msgspec.to_builtins(risk.limits), "custom": risk.kill_switch.custom,
                                  "defaults": msgspec.to_builtins(risk.kill_switch.defaults)})
            case m.ResetKillSwitch():
                state = risk.reset(cmd.reason)
                await self.desks.publish_risk(state)
                return m.Ok(data=msgspec.to_builtins(state))
            case m.SetRiskLimits():
                risk.set_limits(cmd.limits, by="the trader")
                # effective at once: a daily loss limit set below today's loss trips the switch now
                state = risk.on_pnl(risk.kill_switch.realised, risk.kill_switch.unrealised, "limits changed")
                if state is not None:
                    await self.desks.risk_moved(user_id, state)
                else:
                    await self.desks.publish_risk(risk.snapshot())
                return m.Ok(data=msgspec.to_builtins(cmd.limits))
            case m.HaltTrading():
                state = risk.kill_switch.halt(cmd.reason) or risk.snapshot()
                await self.desks.risk_moved(user_id, state)
                return m.Ok(data=msgspec.to_builtins(state))
        return None

    def execution(self, user_id: str, timings: bool = False, day: str | None = None) -> dict:
        desk = self.desks.desks.get(user_id)
        rows = list(desk.timings) if desk else []
        orders = self.journal.orders(user_id, day)
        return {**msgspec.to_builtins(execution_summary(orders, desk.latencies_ms if desk else ())),
                "orders_leave_from": self.desks.clients.leaves_from(user_id),  # the egress this worker sends from
                "tick_to_order": waits.summary(rows), **({"timings": rows} if timings else {})}

    async def acquire_partition(self, p: int) -> None:
        # a crash left positions and orders working: their protection, target watch, reconciliation and
        # cross-check start now, not at the user's next signal, order update or command
        for user_id in (u for u in self.journal.active_users() if partition.of(u) == p):
            self.bus.spawn(self.desks.desk(user_id), name=f"desk:{user_id}")

    async def release_partition(self, p: int) -> None:
        for user_id in self.parts.users_in(p, set(self.desks.desks) | set(self.desks.risks)):
            await self.desks.close(user_id, "partition moved to another worker")
            self.desks.risks.pop(user_id, None)

    @property
    def exchange_clock(self) -> ExchangeClock:
        return self.clock

    def status(self) -> dict:
        return {"users": len(self.desks.desks), "loops": len(self.desks.loops), **self.parts.status()}

    async def close(self) -> None:
        await self.parts.close()
        await self.desks.shutdown()
        if self.identity is not None:
            self.identity[1].close()  # the lock: the next worker on this journal is this instance


def moved(why: str) -> m.Error:
    """A command cut off by its desk's closing (the gateway's 503): what it sent is in the order book, nothing more
    went out, and the same command tried again is served by the worker that owns the user now."""
    return m.Error(code="desk_moved", message=(
        f"your account's execution desk was handed over while this ran ({why}); it was stopped there and nothing "
        "more went to the broker — what it had already sent is in the order book. Try again in a moment."))


def _stored_ns(msg) -> int:
    """When the server stored the message in its stream (epoch ns, µs precision), 0 if unknown: the timestamp
    token of its ack subject, read as such (nats-py's ``msg.metadata`` builds a datetime of it: ~8 µs a signal)."""
    try:
        tokens = msg.reply.split(".")
        if tokens[:2] != ["$JS", "ACK"]:
            return 0
        return int(tokens[7] if len(tokens) == 9 else tokens[9]) // 1000 * 1000  # v1 / v2 (domain, account) forms
    except Exception:  # noqa: BLE001 - not a JetStream message (a test's): no reply
        return 0


amain, run = service.main("execution", ExecutionWorker)
