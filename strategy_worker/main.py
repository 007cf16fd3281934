"""strategy_worker: ticks in, signals out, outcomes back in (``kta worker strategy``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from functools import partial

from shared import messages as m
from shared import partition, service, subjects
from shared.broker_sessions import watch_sessions
from shared.bus import Bus
from shared.config import Settings
from strategy_worker import takeover
from strategy_worker.backtest.service import BacktestService
from strategy_worker.commands import StrategyCommands
from strategy_worker.engine import StrategyEngine
from strategy_worker.seeding import Seeder
from strategy_worker.strategies import registry

log = logging.getLogger("kta.strategy")
SESSION_LOST = "broker session expired: log in to Kite again"
KILL_SWITCH = "kill switch"
RESUBSCRIBE_SECONDS = 3.0
INSTRUMENTS_WAIT = 3.0  # an option strategy's add waits this long for the instrument list (commands time out at 5)


class StrategyWorker:
    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.engine = StrategyEngine(bus, settings)
        self.seeder = Seeder(self.engine)
        self.commands = StrategyCommands(self.engine, self.seeder)
        self.identity = None  # (name, lock file) while this worker holds its store's instance name

    async def start(self) -> StrategyWorker:
        # users are partitioned across strategy workers (shared/partition.py): a worker runs and
        # answers for the users of the partitions it holds, restored from the store when it gets one,
        # and consumes their outcomes in order from the partition's durable consumer
        every = subjects.ANY
        # the store is this worker's: restarted on it, it is the same instance and takes its partitions back at
        # once (a SIGKILLed worker's leases would otherwise keep its users' strategies off for up to 6 s)
        self.identity = partition.restartable_instance(self.engine.settings.data_path / "strategy.lock")
        self.parts = await partition.Partitions(self.bus, "strategy", [
            partition.Feed(subjects.STREAM_OUTCOMES, "strategy-outcomes", subjects.outcomes(every), m.StrategyOutcome,
                           self.on_outcome, batch=64),
        ], on_acquire=partial(takeover.acquire, self.engine, self.commands),
           on_release=partial(takeover.release, self.engine),
           instance=self.identity[0] if self.identity else "").start()
        await self.bus.serve(subjects.cmd_wildcard("strategy"), self.on_command, accept=self.parts.owns)
        await self.bus.serve(subjects.cmd_wildcard("live"), self.on_live, accept=self.parts.owns)
        await self.bus.subscribe(subjects.risk(every), m.RiskState, self.on_risk)
        await self.bus.subscribe(subjects.broker_events(every), m.BrokerEvent, self.on_broker_event)
        self.bus.spawn(self.watch_sessions(), name="sessions")
        self.bus.spawn(self.follow_needs(), name="subscriptions")
        self.backtests = await BacktestService(self.bus, self.engine.settings, clients=self.engine.clients).start(
            accept=self.parts.owns)
        return self

    async def follow_needs(self) -> None:
        """What strategies need ticks of changes as they trade (the strikes around a moving spot, the
        legs of a structure just opened): subscribe the new tokens every few seconds."""
        while True:
            await asyncio.sleep(RESUBSCRIBE_SECONDS)
            for user_id, user in list(self.engine.users.items()):
                if user.live and self.parts.owns(user_id):
                    try:
                        await self.commands.subscribe_needed(user_id, only_new=True)
                    except Exception as e:  # noqa: BLE001 - the next round tries again
                        log.warning("subscriptions of %s: %r", user_id, e, extra={"user_id": user_id})

    async def on_outcome(self, o: m.StrategyOutcome, msg) -> None:
        subject_user = subjects.user_of(partition.published(msg.subject))
        if o.user_id != subject_user:  # a payload naming another user than its subject: refused
            await self.bus.dead_letter(msg.subject, msg.data, f"user_id {o.user_id} on {subject_user}'s subject")
            return
        await self.engine.on_outcome(o)

    async def on_command(self, cmd, user_id: str, msg) -> m.Ok | m.Error:
        c = self.commands
        match cmd:
            case m.AddStrategy():
                if cmd.tokens and cmd.strategy in registry.names() and registry.get(cmd.strategy).kind == "options":
                    # today's list, to refuse a symbol with no option chain now; a slow load is left to Start
                    with contextlib.suppress(asyncio.TimeoutError):
                        load = self.bus.spawn(c.ensure_instruments(user_id), name=f"instruments:{user_id}")
                        await asyncio.wait_for(asyncio.shield(load), INSTRUMENTS_WAIT)
                reply = c.add(user_id, cmd)
                if isinstance(reply, m.Ok) and self.engine.users[user_id].live:
                    await c.subscribe_needed(user_id)
                return reply
            case m.RemoveStrategy():
                return c.remove(user_id, cmd.strategy_id)
            case m.UpdateParams():
                return c.update_params(user_id, cmd)
            case m.ListStrategies():
                return m.Ok(data=c.listing(user_id))
            case m.GetCatalog():
                return m.Ok(data=registry.catalog())
            case m.GetSignals():
                return m.Ok(data=list(self.engine.users[user_id].signal_log)[: cmd.limit])
            case m.Scan():
                return await c.scan(user_id, cmd)
        return m.Error(code="unsupported", message=f"{type(cmd).__name__} is not a strategy command")

    async def on_live(self, cmd, user_id: str, msg) -> m.Ok | m.Error:
        match cmd:
            case m.StartLive():
                return await self.commands.start_live(user_id, list(cmd.tokens), cmd.mode.value)
            case m.StopLive():
                return self.commands.stop_live(user_id)
        return m.Error(code="unsupported", message=f"{type(cmd).__name__} is not a live command")

    async def on_risk(self, state: m.RiskState, msg) -> None:
        if not self.parts.owns(state.user_id):
            return
        user = self.engine.users.get(state.user_id)
        if state.state is m.KillSwitchState.HALTED:
            if user is None or not user.pause_reason.startswith(KILL_SWITCH):
                self.engine.pause_user(state.user_id, f"{KILL_SWITCH}: {state.reason}")
        elif state.state is m.KillSwitchState.ACTIVE and user is not None and user.pause_reason.startswith(KILL_SWITCH):
            self.engine.resume_user(state.user_id)  # the kill switch was reset

    async def on_broker_event(self, ev: m.BrokerEvent, msg) -> None:
        if not self.parts.owns(ev.user_id):
            return
        if ev.kind == "token_expired":
            self.engine.pause_user(ev.user_id, SESSION_LOST)
        elif ev.kind == "reconnected":
            tokens = await self.engine.close_gap(ev.user_id, ev.gap_start)
            if ev.gap_start:
                self.seeder.refill(ev.user_id, tokens, ev.gap_start // 1_000_000_000)

    async def watch_sessions(self) -> None:
        """A session gone pauses the user's strategies; a new one (a Kite re-login) resumes them."""
        async for user_id, live in watch_sessions(self.bus, self.engine.vault):
            if not self.parts.owns(user_id):
                continue
            user = self.engine.users.get(user_id)
            if user is None or not user.live:
                continue
            if live is None:
                self.engine.pause_user(user_id, SESSION_LOST)
            elif user.pause_reason == SESSION_LOST:
                resumed = self.engine.resume_user(user_id)
                log.info("broker session back: %d strategies trade again", resumed, extra={"user_id": user_id})
                self.seeder.request(user_id)
                await self.commands.subscribe_needed(user_id)

    def status(self) -> dict:
        e = self.engine
        disabled = [sid for (_, sid), r in e.running.items() if r.status == "disabled"]
        return {"strategies": len(e.running), "ticks": e.ticks_seen, "signals": e.signals_published,
                "ticks_refused": e.ticks_refused,
                "live_users": sum(1 for u in e.users.values() if u.live), "disabled": len(disabled),
                "partitions": len(self.parts.owned),
                "detail": f"disabled: {', '.join(disabled)}" if disabled else ""}

    async def close(self) -> None:
        await self.backtests.close()
        await self.parts.close()
        for r in list(self.engine.running.values()):
            self.engine.persist(r)
        await self.engine.clients.close()
        if self.identity is not None:
            self.identity[1].close()  # the lock: the next worker on this store is this instance


amain, run = service.main("strategy", StrategyWorker)
