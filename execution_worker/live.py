"""The execution worker's per-user desks and their loops: reconciliation and positions every 30 s,
the kill switch fed from broker P&L, and what a halt does (cancel entries, optionally flatten)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

import msgspec

from execution_worker import placing, protector
from execution_worker.engine import Desk
from execution_worker.eod import EndOfDay
from execution_worker.exercise import ExerciseHandler, OptionContract
from execution_worker.journal import Journal
from execution_worker.marks import TickMarks
from execution_worker.prices import Prices
from execution_worker.reconcile import reconcile
from shared import messages as m
from shared import metrics, subjects
from shared.bus import Bus
from shared.config import Settings
from shared.kite import errors
from shared.kite.models import Instrument
from shared.kite.sessions import client_for, expire_session, get_session, vault_for
from shared.trading import planning as o
from shared.trading.greeks import is_option
from shared.trading.planning import INDEX_UNDERLYINGS
from shared.trading.positions import from_broker
from shared.trading.risk import RiskManager

log = logging.getLogger("kta.execution")


class Desks:
    def __init__(self, bus: Bus, settings: Settings, journal: Journal) -> None:
        self.bus = bus
        self.settings = settings
        self.journal = journal
        self.vault = vault_for(settings)
        self.desks: dict[str, Desk] = {}
        self.loops: dict[str, asyncio.Task] = {}
        self.snapshots: dict[str, m.PositionSnapshot] = {}
        self.instruments: dict[str, Instrument] = {}
        self.risks: dict[str, RiskManager] = {}
        self.marks = TickMarks(bus)
        self.prices = Prices(bus)
        self.exercisers: dict[str, ExerciseHandler] = {}

    def risk(self, user_id: str) -> RiskManager:
        if user_id not in self.risks:
            self.risks[user_id] = RiskManager(user_id, None, self.journal, defaults=self.settings.risk)
        return self.risks[user_id]

    async def desk(self, user_id: str) -> Desk | None:
        """The user's desk, opened on first use from the broker session in KV (None without one)."""
        desk = self.desks.get(user_id)
        if desk is not None:
            return desk
        live = await get_session(self.bus, self.vault, user_id)
        if live is None:
            return None

        def expired(e: errors.TokenException) -> None:
            self.bus.spawn(self.close(user_id, f"broker token rejected: {e.message}", expire=True))

        client = client_for(self.settings, live, on_token_expired=expired)
        if not self.instruments:
            self.instruments = {f"{i.exchange}:{i.tradingsymbol}": i for i in await client.instruments()}
        desk = Desk(user_id, self.bus, self.journal, client, self.risk(user_id), self.instruments,
                    self.settings.market_protection, self.settings.sl_slippage_pct, prices=self.prices)
        desk.on_risk = self._desk_risk_moved
        desk.on_fills = self.marks.track
        protector.started(desk, self.settings.sl_slippage_pct)
        self.desks[user_id] = desk
        await self.marks.track(desk)
        await self.publish_risk(desk.risk.snapshot())
        self.start_loops(user_id)
        return desk

    async def close(self, user_id: str, reason: str, expire: bool = False) -> None:
        self.stop_loops(user_id)
        desk = self.desks.pop(user_id, None)
        await self.marks.forget(user_id)
        if desk is not None:
            await desk.client.aclose()
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
        while True:
            desk = self.desks.get(user_id)
            if desk is None:
                return
            now = time.monotonic()
            try:
                if now >= next_reconcile:
                    await reconcile(desk)
                    await desk.protector.sync_all()  # the safety net: every position's stop in line
                    next_reconcile = now + self.settings.reconcile_interval
                if now >= next_positions:
                    await self.positions(desk)
                    await self.end_of_day(desk)
                    next_positions = now + self.settings.positions_interval
            except errors.TokenException:
                return
            except Exception as e:  # noqa: BLE001 - the loop must outlive a bad poll
                log.warning("loop of %s: %r", user_id, e)
            await asyncio.sleep(min(next_reconcile, next_positions) - time.monotonic())

    async def positions(self, desk: Desk) -> m.PositionSnapshot:
        broker = await desk.client.positions()
        positions = from_broker(broker.net)
        realised = sum(p.realised for p in positions)
        unrealised = sum(p.unrealised for p in positions)
        exposure = sum(abs(p.quantity) * p.last_price for p in positions)
        snap = m.PositionSnapshot(user_id=desk.user_id, ts=time.time_ns(), positions=positions,
                                  day_pnl=sum(p.pnl for p in positions), realised=realised, unrealised=unrealised,
                                  exposure=exposure, source="broker")
        self.snapshots[desk.user_id] = snap
        await self.bus.publish(subjects.positions(desk.user_id), snap)
        desk.anchor_pnl(realised, unrealised)
        state = desk.risk.on_pnl(realised, unrealised, "broker", exposure)
        if state is not None:
            await self.on_risk_change(desk, state, positions)
        else:  # no state change, but the day P&L moved: the risk panel follows the broker's figure
            await self.publish_risk(desk.risk.snapshot())
        await self.exercise(desk, positions)
        return snap

    async def exercise(self, desk: Desk, positions: list[m.Position]) -> None:
        """Stock options near expiry: warn, and square off what is in the money before the cut-off
        (index options settle in cash and are left alone). No quote is asked without such a position."""
        contracts = {p.tradingsymbol: OptionContract.from_instrument(inst) for p in positions if p.quantity
                     and is_option(inst := desk.inst(p.exchange, p.tradingsymbol)) and inst.name not in INDEX_UNDERLYINGS}
        if not contracts:
            return
        names = sorted({c.underlying for c in contracts.values()})
        quotes = await desk.client.ltp(*(f"NSE:{n}" for n in names))
        spots = {n: m.to_paise(quotes[f"NSE:{n}"].last_price) for n in names if f"NSE:{n}" in quotes}
        handler = self.exercisers.setdefault(desk.user_id, ExerciseHandler(desk.user_id, self.journal))
        review = handler.review(positions, contracts, spots)
        for warning in review.warnings:
            log.warning("expiry: %s", warning, extra={"user_id": desk.user_id})
        day = time.strftime("%Y%m%d")
        for req in review.square_offs:  # shorts first; one tag per position and day: placed once
            await placing.place(desk, msgspec.structs.replace(req, tag=o.make_tag(f"expiry{day}{req.tradingsymbol}",
                                                                                  "exit")))

    async def on_risk_change(self, desk: Desk, state: m.RiskState, positions: list[m.Position]) -> None:
        await self.publish_risk(state)
        if state.state is not m.KillSwitchState.HALTED:
            return
        log.critical("kill switch HALTED for %s: %s", desk.user_id, state.reason)
        for order in desk.book.working():
            if order.kind == "entry":
                await placing.cancel(desk, order, "kill switch HALTED")
        if desk.risk.limits.flatten_on_halt:
            for req in o.flatten_plan(desk.user_id, positions, f"flatten{state.tripped_at}", desk.instruments):
                await placing.place(desk, req)

    async def _desk_risk_moved(self, desk: Desk, state: m.RiskState) -> None:
        """The kill switch moved on a fill or a tick: the same response as on the broker poll."""
        await self.on_risk_change(desk, state, self.snapshots[desk.user_id].positions
                                  if desk.user_id in self.snapshots else desk.tracker.positions())

    async def publish_risk(self, state: m.RiskState) -> None:
        metrics.kill_switch(state.user_id, state.state)
        await self.bus.publish(subjects.risk(state.user_id), state)

    async def end_of_day(self, desk: Desk) -> None:
        summaries, state = EndOfDay(desk.user_id, self.journal, desk.risk,
                                    archive_dir=self.settings.data_path / "archive").run()
        for s in summaries:
            log.info("day closed for %s: %s", desk.user_id, msgspec.to_builtins(s))
        if state is not None:
            await self.publish_risk(state)

    async def shutdown(self) -> None:
        for user_id in list(self.desks):
            await self.close(user_id, "shutdown")
        with contextlib.suppress(Exception):
            await self.prices.close()
        with contextlib.suppress(Exception):
            self.journal.close()
