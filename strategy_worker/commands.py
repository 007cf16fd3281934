"""What a user can ask of the strategy worker: add, remove, re-parametrise and list strategies, start
and stop live trading. Every answer is immediate: slow broker work (history, circuit bands) goes to
the seeder, whose progress the listing shows. Quotas (settings ``max_strategies_per_user``,
``max_symbols_per_strategy``, ``max_live_tokens_per_user``) are checked here and at the gateway; a
refusal names the field."""

from __future__ import annotations

import contextlib
import time

from shared import messages as m
from shared import subjects
from shared.candles.store import CandleStore
from shared.kite.clients import NotConnected
from shared.broker_sessions import SessionStoreUnavailable
from shared.kite.errors import KiteError
from strategy_worker.engine import Running, StrategyEngine, log
from strategy_worker.scanner import ScanError, Scanner
from strategy_worker.seeding import Seeder
from strategy_worker.strategies import registry


class StrategyCommands:
    def __init__(self, engine: StrategyEngine, seeder: Seeder) -> None:
        self.engine = engine
        self.seeder = seeder
        self.settings = engine.settings
        self.scanner = Scanner(CandleStore(self.settings.data_path / "candles"))

    # ---- strategies ---------------------------------------------------------------------------

    def add(self, user_id: str, cmd: m.AddStrategy) -> m.Ok | m.Error:
        e, s = self.engine, self.settings
        try:
            params = registry.validate_params(cmd.strategy, cmd.params)
        except registry.ParamsError as err:
            return m.Error(code="bad_params", message=str(err), field=err.field)
        sid = cmd.strategy_id or f"{cmd.strategy}-{time.time_ns() // 1000 % 10**10:x}"
        if e.get(user_id, sid) is not None:
            return m.Error(code="exists", message=f"you already have a strategy {sid}", field="strategy_id")
        if len(e.of_user(user_id)) >= s.max_strategies_per_user:
            return m.Error(code="quota", message=f"at most {s.max_strategies_per_user} strategies per user "
                                                 f"(KTA_MAX_STRATEGIES_PER_USER)", field="strategy")
        user = e.users[user_id]
        follows = not cmd.tokens  # trades the live symbols: today's now, the next Start's then
        skipped: dict[int, str] = {}
        if follows:
            tokens, skipped = self._followed(cmd.strategy, user.tokens) if user.live else ([], {})
        else:
            tokens = list(dict.fromkeys(cmd.tokens))
            problem = self._symbols_problem(cmd.strategy, tokens)
            if problem:
                return problem
        r = e.make(user_id, sid, cmd.strategy, params, tokens, follows)
        r.skipped = skipped
        e.put(r)
        e.persist(r)
        if user.live:
            self.seeder.request(user_id, tokens)
        return m.Ok(data={"strategy_id": sid, "tokens": tokens, "follows_live": follows,
                          "skipped": self._skipped(r)})

    def _symbols_problem(self, name: str, tokens: list[int]) -> m.Error | None:
        e, s = self.engine, self.settings
        if len(tokens) > s.max_symbols_per_strategy:
            return m.Error(code="quota", message=f"{len(tokens)} symbols: at most {s.max_symbols_per_strategy} per "
                                                 f"strategy (KTA_MAX_SYMBOLS_PER_STRATEGY)", field="tokens")
        if not e.ctx.instruments:
            return None  # not connected yet: checked again when live trading starts
        unknown = [t for t in tokens if t not in e.ctx.by_token]
        if unknown:
            return m.Error(code="bad_params", message=f"unknown instrument tokens {unknown[:5]}", field="tokens")
        no_chain = self._no_chain(name, tokens)
        if no_chain:
            names = ", ".join(self._name(t) for t in no_chain)
            return m.Error(code="bad_params", field="tokens",
                           message=f"no option chain for {names}: {name} trades options, pick an index or stock that "
                                   f"has them (e.g. NIFTY 50)")
        same = next(iter(self._same_instrument(name, tokens).items()), None)
        if same:
            t, (other, traded) = same
            return m.Error(code="bad_params", field="tokens",
                           message=f"{self._name(other)} and {self._name(t)} both trade {traded}: pick one")
        return None

    def _same_instrument(self, name: str, tokens: list[int]) -> dict[int, tuple[int, str]]:
        """An equity strategy's symbols that trade the instrument an earlier one trades (NIFTY 50 and its
        future): symbol -> (the earlier symbol, the instrument). Two would share one position."""
        if registry.get(name).kind != "equity":
            return {}
        traded: dict[int, int] = {}
        out = {}
        for t in tokens:
            target = self.engine.ctx.tradable(t)
            if target:
                other = traded.setdefault(target[0].instrument_token, t)
                if other != t:
                    out[t] = (other, target[0].tradingsymbol)
        return out

    def _name(self, token: int) -> str:
        return getattr(self.engine.ctx.by_token.get(token), "tradingsymbol", str(token))

    def _no_chain(self, name: str, tokens: list[int]) -> dict[int, str]:
        """The symbols an option strategy cannot trade: today's list has no options on their underlying."""
        ctx = self.engine.ctx
        if registry.get(name).kind != "options" or not ctx.instruments:
            return {}
        return {t: "no option chain" for t in tokens if not ctx.has_options(t)}

    def _followed(self, name: str, live: list[int]) -> tuple[list[int], dict[int, str]]:
        """A following strategy's symbols out of the live ones (up to the per-strategy quota), and
        those it skips with why."""
        skipped = self._no_chain(name, live)
        for t, (other, traded) in self._same_instrument(name, live).items():
            skipped[t] = f"{self._name(other)} trades {traded} already"
        return [t for t in live if t not in skipped][: self.settings.max_symbols_per_strategy], skipped

    def _skipped(self, r: Running) -> list[dict]:
        return [{"token": t, "symbol": self._name(t), "reason": why} for t, why in r.skipped.items()]

    def remove(self, user_id: str, strategy_id: str) -> m.Ok | m.Error:
        e = self.engine
        r = e.get(user_id, strategy_id)
        if r is None:
            return m.Error(code="not_found", message=f"no strategy {strategy_id}", field="strategy_id")
        held = {str(t): q for t, q in r.runner.positions().items() if q}
        e.drop(user_id, strategy_id)
        e.store.remove(user_id, strategy_id)
        if held:
            log.warning("strategy %s removed holding %s (still protected by the execution worker)", strategy_id,
                        held, extra={"user_id": user_id})
        return m.Ok(data={"removed": strategy_id, "positions_left": held})

    def update_params(self, user_id: str, cmd: m.UpdateParams) -> m.Ok | m.Error:
        e = self.engine
        r = e.get(user_id, cmd.strategy_id)
        if r is None:
            return m.Error(code="not_found", message=f"no strategy {cmd.strategy_id}", field="strategy_id")
        try:
            params = registry.validate_params(r.name, {**r.params, **cmd.params})
        except registry.ParamsError as err:
            return m.Error(code="bad_params", message=str(err), field=err.field)
        fresh = e.make(user_id, cmd.strategy_id, r.name, params, r.runner.symbols, r.follows)
        fresh.runner.restore(r.runner.snapshot())  # books and state carry over; indicators start again
        fresh.status, fresh.error, fresh.signals = r.status, r.error, r.signals
        e.put(fresh)  # warmed on the bars so far
        e.persist(fresh)
        return m.Ok(data={"strategy_id": cmd.strategy_id, "params": fresh.params})

    def listing(self, user_id: str) -> list[dict]:
        e = self.engine
        user = e.users[user_id]
        return [{"strategy_id": r.strategy_id, "strategy": r.name, "params": r.params, "tokens": r.runner.tokens,
                 "follows_live": r.follows, "state": r.status, "error": r.error, "signals": r.signals,
                 "position": {str(k): v for k, v in r.runner.positions().items()},
                 "symbols": self._symbols(r), "in_flight": r.runner.in_flight(),
                 "refused": len(r.runner.refusals), "skipped": self._skipped(r), "seeding": user.seeding}
                for r in e.of_user(user_id)]

    def _symbols(self, r: Running) -> list[dict]:
        by_token = self.engine.ctx.by_token
        return [{"token": t, "symbol": getattr(by_token.get(t), "tradingsymbol", str(t)), "warm": t in r.warm,
                 "position": {str(k): v for k, v in inst.position.items()}, "last_bar": inst.last_bar}
                for t, inst in r.runner.instances.items()]

    async def scan(self, user_id: str, cmd: m.Scan) -> m.Ok | m.Error:
        try:
            kite = await self.engine.clients.client(user_id)
            await self.ensure_instruments(user_id)
            return m.Ok(data=await self.scanner.scan(kite, self.engine.ctx.instruments, cmd))
        except NotConnected:
            return m.Error(code="broker_not_connected", message="Connect your Kite account first.")
        except SessionStoreUnavailable as err:  # not "connect Kite": the gateway's 503, try again
            return m.Error(code=err.code, message=str(err))
        except ScanError as err:
            return m.Error(code="bad_params", message=str(err), field=err.field)
        except KiteError as err:
            return m.Error(code="broker_error", message=str(err))

    # ---- live ---------------------------------------------------------------------------------

    async def ensure_instruments(self, user_id: str) -> None:
        """Today's instrument list (the process's one cache: reloads reach ``ctx`` by its listener)."""
        with contextlib.suppress(NotConnected, SessionStoreUnavailable):
            await self.engine.clients.instrument_list(user_id)

    async def start_live(self, user_id: str, tokens: list[int], mode: str) -> m.Ok | m.Error:
        e, s = self.engine, self.settings
        tokens = list(dict.fromkeys(tokens))
        if len(tokens) > s.max_live_tokens_per_user:
            return m.Error(code="quota", message=f"{len(tokens)} instruments: at most {s.max_live_tokens_per_user} "
                                                 f"live per user (KTA_MAX_LIVE_TOKENS_PER_USER)", field="tokens")
        await self.ensure_instruments(user_id)
        if not e.ctx.instruments:
            return m.Error(code="broker_not_connected", message="Connect your Kite account first.")
        user = e.users[user_id]
        user.tokens, user.mode, user.live = tokens, mode, True
        e.store.set_live(user_id, tokens, mode)
        skipped = []
        for r in e.of_user(user_id):
            if r.follows:  # added without symbols: it trades the live ones
                symbols, r.skipped = self._followed(r.name, tokens)
                e.retarget(r, symbols)
                e.persist(r)
            else:  # its own symbols, checked again now that today's instrument list is in
                r.skipped = self._no_chain(r.name, r.runner.symbols)
            for row in self._skipped(r):
                skipped.append({"strategy_id": r.strategy_id, **row})
                log.warning("%s does not trade %s: %s", r.strategy_id, row["symbol"], row["reason"],
                            extra={"user_id": user_id})
        e.resume_user(user_id)
        self.seeder.request(user_id)
        needed = await self.subscribe_needed(user_id)
        return m.Ok(data={"strategies": len(e.of_user(user_id)), "tokens": sorted(needed),
                          "seeding": e.users[user_id].seeding, "skipped": skipped})

    async def subscribe_needed(self, user_id: str, only_new: bool = False) -> set[int]:
        """Ticks of everything the user's strategies need: their symbols, what they trade them
        through, an option strategy's strikes around the spot and its legs. ``only_new``: nothing
        is asked of the ticker unless that set grew (the spot moved, a structure was opened)."""
        e = self.engine
        user = e.users[user_id]
        needed = set(user.tokens)
        for r in e.of_user(user_id):
            needed |= r.runner.required_tokens()
        if only_new and needed <= user.subscribed:
            return needed
        user.subscribed |= needed
        await e.watch_ticks(needed)
        # in the background: a slow or absent ticker worker must not hold up the answer
        e.bus.spawn(self._ask_ticker(user_id, sorted(needed)), name=f"ticker-subscribe:{user_id}")
        return needed

    async def _ask_ticker(self, user_id: str, tokens: list[int]) -> None:
        # full mode: only full packets carry the exchange timestamp that bars are built on
        try:
            await self.engine.bus.request(subjects.cmd(user_id, "ticker", "subscribe"),
                                          m.Subscribe(tokens=tokens, mode=m.TickMode.FULL), timeout=5)
        except Exception as err:  # noqa: BLE001 - bars then fall back to receive time
            log.warning("could not subscribe strategy tokens for %s: %r", user_id, err)

    def stop_live(self, user_id: str, reason: str = "stopped") -> m.Ok:
        e = self.engine
        user = e.users[user_id]
        user.live, user.pause_reason, user.subscribed = False, reason, set()
        e.store.set_live(user_id, None)
        for r in e.of_user(user_id):
            e.persist(r)
        e.reindex()
        return m.Ok(data={"paused": len(e.of_user(user_id))})
