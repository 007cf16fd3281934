"""The execution worker's per-user desks and their loops: reconciliation and positions every 30 s,
the kill switch fed from broker P&L, and what a halt does (cancel entries, optionally flatten)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec

from execution_worker import authorisation, controls, edis_ahead, intraday, placing, protector
from execution_worker.alerts import alert
from execution_worker.engine import Desk, DeskClosed
from execution_worker.crosscheck import CrossCheck
from execution_worker.eod import EndOfDay
from execution_worker.exercise import ExerciseHandler, OptionContract
from execution_worker.journal import Journal
from execution_worker.marks import TickMarks, carried_marks
from execution_worker.decisions_first import DecisionsFirst
from execution_worker.prices import Prices
from execution_worker.reconcile import reconcile
from shared import messages as m
from shared import metrics, subjects
from shared.bus import Bus
from shared.exchange_clock import ExchangeClock
from shared.config import Settings
from shared.kite import errors
from shared.kite.client import KiteClient
from shared.kite.clients import KiteClients, NotConnected
from shared.broker_sessions import expire_session
from shared.trading import planning as o
from shared.trading.greeks import is_option
from shared.trading.planning import INDEX_UNDERLYINGS
from shared.trading.positions import from_broker
from shared.trading.risk import RiskManager

log = logging.getLogger("kta.execution")
CLOCK_QUIET = 10.0  # s without an exchange timestamp before the end of day asks a quote's time (once a pass at most)
TIME_QUOTE = "NSE:NIFTY 50"  # quoted all session; its time is the exchange's
CLOCK_WAIT = 300.0  # s the end of day waits for the exchange's time before it trusts the machine's
INTRADAY_CHECK = 1.0  # s between looks at the MIS cutoff (arithmetic only until it is due)


class Desks:
    def __init__(self, bus: Bus, settings: Settings, journal: Journal, clock: ExchangeClock | None = None) -> None:
        self.bus = bus
        self.settings = settings
        self.journal = journal
        self.clock = clock or ExchangeClock()  # the exchange's day and time (shared/exchange_clock.py)
        self.started = time.monotonic()
        self.desks: dict[str, Desk] = {}
        self.loops: dict[str, asyncio.Task] = {}
        self.snapshots: dict[str, m.PositionSnapshot] = {}
        self.clients = KiteClients(bus, settings, on_token_expired=self._token_rejected, on_replaced=self._new_client)
        self.instruments = self.clients.instruments  # "EXCHANGE:SYMBOL" -> Instrument, today's list
        self.instruments.clock = self.clock.now  # the exchange's today: its expired contracts gone, its new ones in
        self.risks: dict[str, RiskManager] = {}
        self.marks = TickMarks(bus, self.clock)
        self.prices = Prices(bus, self.clock)
        self.first = DecisionsFirst()  # one loop: every user's signals go before every user's follow-up work
        self.exercisers: dict[str, ExerciseHandler] = {}
        self.crosschecks: dict[str, CrossCheck] = {}
        self.opening: dict[str, asyncio.Lock] = {}
        self.closings: dict[str, int] = {}  # user -> desks closed so far (an opening that saw one is void)

    def risk(self, user_id: str) -> RiskManager:
        if user_id not in self.risks:
            self.risks[user_id] = RiskManager(user_id, None, self.journal, defaults=self.settings.risk)
        return self.risks[user_id]

    async def desk(self, user_id: str) -> Desk | None:
        """The user's desk, opened on first use from the broker session in KV (None without one)."""
        desk = self.desks.get(user_id)
        if desk is not None:
            return desk
        # one opening at a time per user: after a restart the feeds, the commands and the partition's
        # acquisition all ask at once, and two desks would each place the same stop from the journal
        async with self.opening.setdefault(user_id, asyncio.Lock()):
            return self.desks.get(user_id) or await self._open(user_id)

    async def _open(self, user_id: str) -> Desk | None:
        stamps = [("asked", time.monotonic())]
        closings = self.closings.get(user_id, 0)
        try:
            await self.clients.instrument_list(user_id)  # today's (refreshed daily, in place)
            stamps.append(("instruments", time.monotonic()))
            client = await self.clients.client(user_id)  # last: a close() meanwhile cannot hand us a closed one
        except NotConnected:
            return None
        if user_id in self.desks:  # opened by a concurrent caller while this one waited
            return self.desks[user_id]
        desk = Desk(user_id, self.bus, self.journal, client, self.risk(user_id), self.instruments,
                    self.settings.market_protection, self.settings.sl_slippage_pct, prices=self.prices,
                    first=self.first)
        desk.margin_check_above = m.to_paise(self.settings.margin_check_above)  # see margin_check.py
        desk.exchange = self.clock
        desk.mis_square_off_at = intraday.parse_at(self.settings.mis_square_off_at)
        desk.on_risk = self._desk_risk_moved
        desk.on_fills = self.marks.track
        if not self.clock.known:  # the exchange's time before the first decision (the MIS cutoff, the day)
            await self._ask_the_time(desk)
        protector.started(desk, self.settings.sl_slippage_pct)
        authorisation.started(desk)
        edis_ahead.started(desk).ask_the_time = lambda: self._ask_the_time(desk)
        self.crosschecks[user_id] = CrossCheck(desk, self.exerciser(user_id))
        stamps.append(("journal", time.monotonic()))
        await desk.outcomes.recover()  # what a crash kept from the strategies
        stamps.append(("outcomes", time.monotonic()))
        if self.closings.get(user_id, 0) != closings:  # closed while it opened (the lease moved): its client is gone
            desk.closed = "closed while it opened"
            raise DeskClosed(user_id, desk.closed)
        desk.client = self.clients.cached(user_id) or client  # (replaced while it opened: _new_client missed it)
        self.desks[user_id] = desk
        await self.marks.track(desk)
        await self.publish_risk(desk.risk.snapshot())
        self.start_loops(user_id)
        stamps.append(("opened", time.monotonic()))
        log.info("desk opened: %s", ", ".join(f"{name} +{(at - stamps[0][1]) * 1000:.0f} ms" for name, at in stamps[1:]),
                 extra={"user_id": user_id})
        return desk

    def _new_client(self, user_id: str, client: KiteClient) -> None:
        """The user's session moved to another api_key (a new Kite app): the desk's broker calls go through the
        new client from now on; the one it held is closed."""
        desk = self.desks.get(user_id)
        if desk is not None:
            log.warning("broker session moved to another api_key: the desk takes the new client",
                        extra={"user_id": user_id})
            desk.client = client

    def _token_rejected(self, user_id: str, e: errors.TokenException) -> None:
        self.bus.spawn(self.close(user_id, f"broker token rejected: {e.message}", expire=True))

    async def close(self, user_id: str, reason: str, expire: bool = False) -> None:
        """Forget the user's desk and close its Kite client. Work still holding the desk (a command, a signal's
        orders on their way) fails at its next broker call, and an order of it is never sent (``placing`` checks
        ``closed`` before it journals the submit): a command is answered ``desk_moved`` (main.py), a signal is
        not acked and comes back to whoever owns the user now."""
        self.closings[user_id] = self.closings.get(user_id, 0) + 1
        self.stop_loops(user_id)
        desk = self.desks.pop(user_id, None)
        self.crosschecks.pop(user_id, None)
        if desk is not None:
            desk.closed = reason
        if desk is not None and desk.held_sells is not None:
            desk.held_sells.close()
        await self.marks.forget(user_id)
        await self.clients.drop(user_id)
        if expire:
            await expire_session(self.bus, user_id, reason)

    # ---- loops --------------------------------------------------------------------------------

    def start_loops(self, user_id: str) -> None:
        if user_id not in self.loops or self.loops[user_id].done():
            self.loops[user_id] = self.bus.spawn(self._loop(user_id), name=f"loops:{user_id}")

    def stop_loops(self, user_id: str) -> None:
        task = self.loops.pop(user_id, None)
        if task is not None:
            task.cancel()

    async def _loop(self, user_id: str) -> None:
        next_reconcile = next_positions = 0.0
        first = True
        while True:
            desk = self.desks.get(user_id)
            if desk is None:
                return
            now = time.monotonic()
            try:
                if now >= next_reconcile:
                    await reconcile(desk)
                    reconciled = time.monotonic()
                    await desk.protector.sync_all()  # the safety net: every position's stop in line
                    if first:
                        log.info("first pass: reconciled in %.0f ms, protection in line %.0f ms later",
                                 (reconciled - now) * 1000, (time.monotonic() - reconciled) * 1000,
                                 extra={"user_id": user_id})
                        first = False
                    desk.held_sells.watch()  # held delivery sells (also those a restart found in the journal)
                    await desk.edis.check()  # the day's eDIS asked before a GTT stop needs it
                    next_reconcile = now + self.settings.reconcile_interval
                if now >= next_positions:
                    await self.positions(desk)
                    await self.end_of_day(desk)
                    next_positions = now + self.settings.positions_interval
                if reason := intraday.square_off_due(desk):  # by the exchange's clock: a paper market runs fast
                    async with desk.exclusive(intraday.MIS):  # after the decision in hand and its MIS orders
                        await controls.square_off(desk, reason, product=intraday.MIS)
            except errors.TokenException:
                return
            except Exception as e:  # noqa: BLE001 - the loop must outlive a bad poll
                log.warning("loop of %s: %r", user_id, e)
            await asyncio.sleep(min(next_reconcile, next_positions, time.monotonic() + INTRADAY_CHECK) - time.monotonic())

    async def positions(self, desk: Desk) -> m.PositionSnapshot:
        """The broker's positions: the snapshot the dashboard shows and the day P&L the kill switch
        judges — Kite's own day figure, ``m2m`` (carried positions count from the previous close, not
        from their cost): closed positions' m2m as realised, open ones' as unrealised."""
        broker = await desk.client.positions()
        positions = from_broker(broker.net)
        check = self.crosschecks.get(desk.user_id)
        if check is not None:
            await check.run(positions)  # what the broker changed without kta becomes an external fill
        realised = sum(p.m2m for p in positions if not p.quantity)
        unrealised = sum(p.m2m for p in positions if p.quantity)
        exposure = sum(abs(p.quantity) * p.last_price for p in positions)
        snap = m.PositionSnapshot(user_id=desk.user_id, ts=time.time_ns(), positions=positions,
                                  exchange_ts=int(self.clock.now() * 1e9) if self.clock.known else 0,
                                  day_pnl=realised + unrealised, realised=realised, unrealised=unrealised,
                                  exposure=exposure, source="broker",
                                  protection=await desk.protector.status() if desk.protector else [],
                                  carried=await carried_marks(desk, positions))
        self.snapshots[desk.user_id] = snap
        await self.bus.publish(subjects.positions(desk.user_id), snap)
        desk.anchor_pnl(realised, unrealised)
        state = desk.risk.on_pnl(realised, unrealised, "broker", exposure)
        if state is not None:
            await self.on_risk_change(desk, state)
        else:  # no state change, but the day P&L moved: the risk panel follows the broker's figure
            await self.publish_risk(desk.risk.snapshot())
        await self.exercise(desk)
        return snap

    async def exercise(self, desk: Desk) -> None:
        """Stock options near expiry, as each strategy holds them: warn, and square off what is in the
        money before the cut-off (index options settle in cash and are left alone). No quote is
        asked without such a position."""
        positions = [p for p in desk.tracker.positions() if p.quantity]
        contracts = {p.tradingsymbol: OptionContract.from_instrument(inst) for p in positions
                     if is_option(inst := desk.inst(p.exchange, p.tradingsymbol)) and inst.name not in INDEX_UNDERLYINGS}
        if not contracts:
            return
        names = sorted({c.underlying for c in contracts.values()})
        quotes = await desk.client.ltp(*(f"NSE:{n}" for n in names))
        spots = {n: m.to_paise(quotes[f"NSE:{n}"].last_price) for n in names if f"NSE:{n}" in quotes}
        review = self.exerciser(desk.user_id).review(positions, contracts, spots)
        for warning in review.warnings:
            log.warning("expiry: %s", warning, extra={"user_id": desk.user_id})
        day = self.clock.day().replace("-", "")
        for p in review.closing:  # shorts first; one tag per position and day: placed once, LIMIT on stock options
            inst = desk.inst(p.exchange, p.tradingsymbol)
            price = (await desk.prices.prices(desk.client, [f"{p.exchange}:{p.tradingsymbol}"])).get(
                f"{p.exchange}:{p.tradingsymbol}", 0)
            for req in o.closing_request(desk.user_id, p, "exit", f"expiry|{day}|{p.strategy_id}|{p.tradingsymbol}", 0,
                                         inst, desk.market_protection):
                await placing.place(desk, o.marketable(req, inst, price), p.strategy_id)

    def exerciser(self, user_id: str) -> ExerciseHandler:
        return self.exercisers.setdefault(user_id, ExerciseHandler(user_id, self.journal, clock=self.clock.now))

    async def on_risk_change(self, desk: Desk, state: m.RiskState) -> None:
        """The kill switch moved: tell the trader; HALTED cancels the entries still working (the
        stop-losses stay) and, with ``flatten_on_halt``, squares everything off."""
        await self.announce(desk, state)
        if state.state is m.KillSwitchState.HALTED:
            log.critical("kill switch HALTED for %s: %s", desk.user_id, state.reason)
            self.bus.spawn(self._halted(desk, state), name=f"halted:{desk.user_id}")

    async def announce(self, desk: Desk, state: m.RiskState) -> None:
        """The kill switch's new state to the dashboard and the trader's alerts."""
        await self.publish_risk(state)
        await alert(self.bus, desk.user_id, "kill_switch", f"kill switch {state.state}", state.reason,
                    severity="critical" if state.state is m.KillSwitchState.HALTED else "warning",
                    key=f"kill_switch:{state.state}:{state.tripped_at}", clock=desk.exchange)

    async def _halted(self, desk: Desk, state: m.RiskState) -> None:
        async with desk.exclusive():  # after the decision in hand and its orders, before the next one
            for order in desk.book.working():
                if order.kind in ("entry", "manual") and not order.is_protective:
                    await placing.cancel(desk, order, "kill switch HALTED")
            if desk.risk.limits.flatten_on_halt:
                await controls.square_off(desk, f"kill switch HALTED: {state.reason}")

    async def risk_moved(self, user_id: str, state: m.RiskState) -> None:
        """A manual halt (or another command) moved the switch: the same response as a trip."""
        desk = self.desks.get(user_id)
        if desk is not None:
            await self.on_risk_change(desk, state)
        else:
            await self.publish_risk(state)

    async def _desk_risk_moved(self, desk: Desk, state: m.RiskState) -> None:
        """The kill switch moved on a fill or a tick: the same response as on the broker poll."""
        await self.on_risk_change(desk, state)

    async def stop(self, desk: Desk, cmd: m.StopLive) -> dict:
        """Stop trading: working entries and exits cancelled (the stop-losses stay), then every open
        position protected at the broker or squared off. The loops go on while positions are open,
        so their stop-losses' fills still reach the journal."""
        self.marks.stopped(desk.user_id)  # the ticker drops the user's tokens on Stop: ask anew for the next position
        if cmd.cancel_open_orders and self.settings.cancel_open_on_stop:
            working = [o for o in desk.book.working() if not o.is_protective]
            for order in working:
                await placing.cancel(desk, order, "stop")
            await placing.wait_final(desk, working, 10.0)
        if cmd.positions == "square_off":
            done = {"square_off": await controls.square_off(desk, "stop: square off")}
        else:
            done = {"protected": await controls.protect_all(desk, self.settings.default_stop_pct)}
        result = await reconcile(desk)
        await self.positions(desk)
        if not any(p.quantity for p in desk.tracker.positions()) and not desk.book.working():
            self.stop_loops(desk.user_id)
        return {"positions_mode": cmd.positions, **done, "reconcile": msgspec.to_builtins(result)}

    async def publish_risk(self, state: m.RiskState) -> None:
        metrics.kill_switch(state.user_id, state.state)
        await self.bus.publish(subjects.risk(state.user_id), state)

    async def end_of_day(self, desk: Desk) -> None:
        """The finished days' reports and the kill switch's new day, by the exchange's clock: once it has been
        heard (before that the machine's clock could close a paper broker's day at its 10:15); a quote's time
        is asked for when nothing has told it for a while (flat and idle, after hours)."""
        if self.clock.quiet_for() > CLOCK_QUIET:
            await self._ask_the_time(desk)
        if not self.clock.known and time.monotonic() - self.started < CLOCK_WAIT:
            return  # (a broker that never tells its time, e.g. no quote permission: the machine's clock, later)
        check = self.crosschecks.get(desk.user_id)
        summaries, state = EndOfDay(desk.user_id, self.journal, desk.risk, clock=self.clock.now,
                                    archive_dir=self.settings.data_path / "archive",
                                    unsettled=check.unsettled if check is not None else lambda day: False).run()
        for s in summaries:
            log.info("day closed for %s: %s", desk.user_id, msgspec.to_builtins(s))
            await alert(self.bus, desk.user_id, "eod_report", f"kta: the day's report for {s.day}",
                        f"P&L {m.format_inr(s.realised_pnl)}, {s.journal.total_trades} closed trade(s), win rate "
                        f"{s.journal.win_rate:.0f} %, {s.signals} signals ({s.signals_refused} refused); at the close: "
                        f"{m.trading_state(s.kill_switch)}", severity="info", key=f"eod:{s.day}", clock=desk.exchange)
        if state is not None:
            await self.publish_risk(state)

    async def _ask_the_time(self, desk: Desk) -> None:
        try:
            quotes = await desk.client.quote(TIME_QUOTE)
        except errors.KiteError as e:
            log.info("the exchange's time unread (%s): the day waits", e, extra={"user_id": desk.user_id})
            return
        if (q := quotes.get(TIME_QUOTE)) is not None:
            self.clock.heard_stamp(q.timestamp)

    async def shutdown(self) -> None:
        for user_id in list(self.desks):
            await self.close(user_id, "shutdown")
        await self.clients.close()
        with contextlib.suppress(Exception):
            await self.prices.close()
        with contextlib.suppress(Exception):
            self.journal.close()
