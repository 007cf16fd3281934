"""strategy_worker: ticks in, signals out (``kta worker strategy``)."""

from __future__ import annotations

import asyncio

from shared import messages as m
from shared import partition, service, subjects
from shared.bus import Bus
from shared.config import Settings
from shared.kite.errors import KiteError
from shared.kite.sessions import client_for, get_session, watch_sessions
from strategy_worker.engine import StrategyEngine
from strategy_worker.scanner import Scanner, ScanError
from strategy_worker.strategies import registry


class StrategyWorker:
    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.engine = StrategyEngine(bus, settings)
        self.scanner = Scanner()

    async def start(self) -> "StrategyWorker":
        # users are partitioned across strategy workers (shared/partition.py): a worker runs and
        # answers for the users of the partitions it holds, restored from the store when it gets one
        self.parts = await partition.Partitions(self.bus, "strategy", on_acquire=self.acquire_partition,
                                                on_release=self.release_partition).start()
        await self.bus.serve(subjects.cmd_wildcard("strategy"), self.on_command, accept=self.parts.owns)
        await self.bus.serve("kta.u.*.cmd.live.*", self.on_live, accept=self.parts.owns)
        await self.bus.subscribe("kta.u.*.risk", m.RiskState, self.on_risk)
        await self.bus.subscribe("kta.u.*.broker.events", m.BrokerEvent, self.on_broker_event)
        self.bus.spawn(self.watch_sessions(), name="sessions")
        return self

    async def acquire_partition(self, p: int) -> None:
        self.engine.restore(only=lambda user_id: partition.of(user_id) == p)
        for user_id, (tokens, mode) in self.engine.store.live_users().items():
            if partition.of(user_id) == p:
                self.bus.spawn(self.engine.start_live(user_id, tokens, mode), name=f"resume:{user_id}")

    async def release_partition(self, p: int) -> None:
        for user_id in self.parts.users_in(p, {r.strategy.user_id for r in self.engine.running.values()}):
            self.engine.forget(user_id)

    async def on_command(self, cmd, user_id: str, msg) -> m.Ok | m.Error:
        e = self.engine
        if isinstance(cmd, m.AddStrategy):
            reply = e.add(user_id, cmd)
            if isinstance(reply, m.Ok) and e.users[user_id].live:
                await e.seed(user_id)
                await e.subscribe_needed(user_id)
            return reply
        if isinstance(cmd, m.RemoveStrategy):
            return e.remove(user_id, cmd.strategy_id)
        if isinstance(cmd, m.UpdateParams):
            return e.update_params(user_id, cmd)
        if isinstance(cmd, m.ListStrategies):
            return m.Ok(data=e.listing(user_id))
        if isinstance(cmd, m.GetCatalog):
            return m.Ok(data=registry.catalog())
        if isinstance(cmd, m.GetSignals):
            return m.Ok(data=list(e.users[user_id].signal_log)[: cmd.limit])
        if isinstance(cmd, m.Scan):
            return await self.scan(user_id, cmd)
        return m.Error(code="unsupported", message=f"{type(cmd).__name__} is not a strategy command")

    async def scan(self, user_id: str, cmd: m.Scan) -> m.Ok | m.Error:
        e = self.engine
        live = await get_session(self.bus, e.vault, user_id)
        if live is None:
            return m.Error(code="broker_not_connected", message="Connect your Kite account first.")
        await e.ensure_instruments(user_id)
        try:
            async with client_for(e.settings, live) as kite:
                return m.Ok(data=await self.scanner.scan(kite, e.ctx.instruments, cmd))
        except ScanError as err:
            return m.Error(code="bad_params", message=str(err), field=err.field)
        except KiteError as err:
            return m.Error(code="broker_error", message=str(err))

    async def on_live(self, cmd, user_id: str, msg) -> m.Ok | m.Error:
        if isinstance(cmd, m.StartLive):
            return await self.engine.start_live(user_id, list(cmd.tokens), cmd.mode.value)
        if isinstance(cmd, m.StopLive):
            return self.engine.stop_live(user_id)
        return m.Error(code="unsupported", message=f"{type(cmd).__name__} is not a live command")

    async def on_risk(self, state: m.RiskState, msg) -> None:
        if not self.parts.owns(state.user_id):
            return
        if state.state is m.KillSwitchState.HALTED:
            self.engine.pause_user(state.user_id, f"kill switch: {state.reason}")

    async def on_broker_event(self, ev: m.BrokerEvent, msg) -> None:
        if not self.parts.owns(ev.user_id):
            return
        if ev.kind == "token_expired":
            self.engine.pause_user(ev.user_id, "broker session expired: log in to Kite again")
        elif ev.kind == "reconnected":
            await self.engine.on_gap(ev.user_id, ev.gap_start)

    async def watch_sessions(self) -> None:
        async for user_id, live in watch_sessions(self.bus, self.engine.vault):
            if live is None and self.engine.users.get(user_id, None) and self.engine.users[user_id].live:
                self.engine.pause_user(user_id, "broker session expired: log in to Kite again")

    def status(self) -> dict:
        e = self.engine
        disabled = [sid for sid, r in e.running.items() if r.status == "disabled"]
        return {"strategies": len(e.running), "ticks": e.ticks_seen, "signals": e.signals_published,
                "live_users": sum(1 for u in e.users.values() if u.live), "disabled": len(disabled),
                "partitions": len(self.parts.owned),
                "detail": f"disabled: {', '.join(disabled)}" if disabled else ""}

    async def close(self) -> None:
        await self.parts.close()
        for sid in list(self.engine.running):
            self.engine.persist(sid)


async def start(bus: Bus, settings: Settings) -> StrategyWorker:
    return await StrategyWorker(bus, settings).start()


async def amain(settings: Settings, stop: asyncio.Event | None = None) -> None:
    await service.amain("strategy", settings, start, stop)


def run(settings: Settings) -> None:
    service.run("strategy", settings, start)
