"""One user's strategy on its symbols: an instance of the strategy class per symbol, the bars and
outcomes routed to the instance they belong to, and every signal vetted before it leaves.

The live engine and a backtest drive the same object: ``on_bar`` / ``on_tick`` with market data,
``apply`` with what the execution worker (or a backtest's fill model) says became of the signals.
Each returns the signals to send — already checked (``strategies/checks.py``) and booked in flight.
A signal that fails a check is not returned: it is kept in ``refusals`` and the instance hears of it
through ``on_refused`` (what it returns then is dropped, so a refusal cannot loop).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import msgspec

from shared.messages import Bar, Signal, StrategyOutcome, Tick
from strategy_worker.strategies.base import AnyOut, BaseStrategy
from strategy_worker.strategies.checks import Refusal, book_refusal, price_refusal
from strategy_worker.strategies.context import StrategyContext

log = logging.getLogger("kta.strategy")
OWNERS = 4096  # signal id -> symbol, kept for the late outcomes of finished signals (stop-loss fills)
HOOKS = {"filled": "on_fill", "protective_fill": "on_fill", "external": "on_fill", "refused": "on_refused",
         "rejected": "on_refused", "cancelled": "on_cancelled", "rolled_back": "on_cancelled"}


class StrategyRunner:
    def __init__(self, cls: type[BaseStrategy], strategy_id: str, user_id: str, params: msgspec.Struct,
                 tokens: Iterable[int], ctx: StrategyContext, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.cls = cls
        self.strategy_id = strategy_id
        self.user_id = user_id
        self.params = params
        self.ctx = ctx
        self.now_ns = now_ns
        self.instances: dict[int, BaseStrategy] = {}
        self.refusals: deque[tuple[AnyOut, Refusal]] = deque(maxlen=100)
        self.orphans: dict[int, int] = {}  # outcomes no instance could claim: token -> position
        self._owner: dict[str, int] = {}
        self.on_refusal: Callable[[AnyOut, Refusal], None] | None = None
        self.touched: int | None = None  # the symbol whose instance the last outcome went to
        self.set_tokens(tokens)

    @property
    def tokens(self) -> list[int]:
        return list(self.instances)

    @property
    def symbols(self) -> list[int]:
        """The symbols it is set to trade (``tokens`` less the instances kept only until flat)."""
        return [t for t in self.instances if t in self.wanted]

    def set_tokens(self, tokens: Iterable[int]) -> None:
        """Add instances for new symbols; an instance still holding or in flight is kept until it
        is flat (it gets its bars, ticks and outcomes for its exits), then retired."""
        tokens = list(dict.fromkeys(tokens))
        self.wanted = set(tokens)
        for t in tokens:
            if t not in self.instances:
                self.instances[t] = self.cls(self.strategy_id, self.user_id, self.params, t, self.ctx)
        for t in [t for t in self.instances if t not in tokens]:
            book = self.instances[t].book
            if not book.position and not book.flights:
                del self.instances[t]

    def required_tokens(self) -> set[int]:
        out: set[int] = set()
        for inst in self.instances.values():
            out |= inst.required_tokens()
        return out

    # ---- market data --------------------------------------------------------------------------

    def retired(self, inst: BaseStrategy) -> bool:
        """An instance kept past its symbol's removal (it held or was in flight) goes once flat."""
        if inst.token in self.wanted or inst.book.position or inst.book.flights:
            return False
        del self.instances[inst.token]
        return True

    def on_bar(self, bar: Bar) -> list[AnyOut]:
        inst = self.instances.get(bar.instrument_token)
        if inst is None or bar.start <= inst.last_bar:  # each bar once, in time order
            return []
        if inst.token not in self.wanted and self.retired(inst):
            return []
        inst.last_bar = bar.start
        out = inst.on_bar(bar)
        return self._vet(inst, out) if out else []

    def on_tick(self, tick: Tick) -> list[AnyOut]:
        inst = self.instances.get(tick.instrument_token)
        if inst is None or inst.token not in self.wanted and self.retired(inst):
            return []
        out = inst.on_tick(tick)
        return self._vet(inst, out) if out else []

    def warm_up(self, bar: Bar) -> None:
        """Feed a historical bar to its symbol's instance without trading."""
        inst = self.instances.get(bar.instrument_token)
        if inst is None or bar.start <= inst.last_bar:
            return
        inst.last_bar = bar.start
        inst.warming = True
        try:
            inst.on_bar(bar)
        finally:
            inst.warming = False

    # ---- what became of the signals -----------------------------------------------------------

    def apply(self, o: StrategyOutcome) -> list[AnyOut]:
        """Book an outcome on the instance it belongs to, call its hooks, return what they send."""
        if not o.instrument_token and o.tradingsymbol:  # named by symbol only: find its token
            inst = self.ctx.by_symbol.get(f"{o.exchange}:{o.tradingsymbol}")
            if inst is not None:
                o = msgspec.structs.replace(o, instrument_token=inst.instrument_token)
        inst = self._owner_of(o)
        self.touched = inst.token if inst is not None else None
        if inst is None:
            if o.instrument_token and o.kind not in ("accepted", "refused"):
                if o.position:
                    self.orphans[o.instrument_token] = o.position
                else:
                    self.orphans.pop(o.instrument_token, None)
            log.warning("outcome %s for %s/%s matches none of its symbols", o.kind, self.strategy_id,
                        o.tradingsymbol or o.signal_id, extra={"user_id": self.user_id})
            return []
        seq = inst.book.last_seq
        inst.book.apply(o)
        if o.seq and seq >= o.seq:
            return []  # already applied: a redelivery
        out: list[AnyOut] = []
        hook = HOOKS.get(o.kind)
        if hook:
            out += getattr(inst, hook)(o) or []
        out += inst.on_outcome(o) or []
        return self._vet(inst, out) if out else []

    def _owner_of(self, o: StrategyOutcome) -> BaseStrategy | None:
        sid = o.signal_id or o.group_id
        token = self._owner.get(sid) if sid else None
        if token is not None and token in self.instances:
            return self.instances[token]
        for inst in self.instances.values():
            if sid and sid in inst.book.flights:
                return inst
        if o.instrument_token:
            for inst in self.instances.values():
                if o.instrument_token in inst.traded_tokens():
                    return inst
        return None

    # ---- vetting ------------------------------------------------------------------------------

    def _vet(self, inst: BaseStrategy, out: list[AnyOut | None]) -> list[AnyOut]:
        sent: list[AnyOut] = []
        for sig in out:
            if sig is None:
                continue
            refusal = book_refusal(sig, inst.book)
            if refusal is None and isinstance(sig, Signal):
                ref = sig.metadata.get("ref_price") or self.ctx.ltp(sig.instrument_token)
                refusal = price_refusal(sig, ref, self.ctx.bands.get(sig.instrument_token))
            if refusal is not None:
                self.refuse(inst, sig, refusal)
                continue
            inst.book.sent(sig, self.now_ns())
            self._own(sig.id, inst.token)
            sent.append(sig)
        return sent

    def refuse(self, inst: BaseStrategy, sig: AnyOut, refusal: Refusal) -> None:
        """A signal that will not be sent (a failed check, or a publish that failed)."""
        inst.book.forget(sig.id)
        self.refusals.append((sig, refusal))
        if self.on_refusal is not None:
            self.on_refusal(sig, refusal)
        log.warning("signal %s of %s refused at the strategy: %s %s", sig.id, self.strategy_id, refusal.code,
                    refusal.reason, extra={"user_id": self.user_id})
        token = sig.instrument_token if isinstance(sig, Signal) else 0
        o = StrategyOutcome(user_id=self.user_id, strategy_id=self.strategy_id, kind="refused", signal_id=sig.id,
                            instrument_token=token, position=inst.book.held(token) if token else 0,
                            code=refusal.code, reason=refusal.reason, ts=self.now_ns())
        dropped = (inst.on_refused(o) or []) + (inst.on_outcome(o) or [])
        if any(dropped):
            log.warning("signals from on_refused of %s dropped", self.strategy_id, extra={"user_id": self.user_id})

    def refused(self, sig: AnyOut, refusal: Refusal) -> None:
        """Undo sending ``sig`` (its publish failed): it is refused as if a check had failed."""
        inst = self.instances.get(self._owner.get(sig.id, -1))
        if inst is not None:
            self.refuse(inst, sig, refusal)

    def _own(self, signal_id: str, token: int) -> None:
        self._owner[signal_id] = token
        if len(self._owner) > OWNERS:
            del self._owner[next(iter(self._owner))]

    # ---- positions and restarts ---------------------------------------------------------------

    def positions(self) -> dict[int, int]:
        out = dict(self.orphans)
        for inst in self.instances.values():
            for t, q in inst.position.items():
                out[t] = out.get(t, 0) + q
        return out

    def in_flight(self) -> list[dict[str, Any]]:
        now = self.now_ns()
        return [{"signal_id": f.signal_id, "symbol": t, "intent": f.intent, "age_s": round((now - f.sent_at) / 1e9, 1)}
                for t, inst in self.instances.items() for f in inst.book.flights.values()]

    def adopt(self, rows: list[dict[str, Any]], seq: int) -> None:
        """Positions from the journal (``GetStrategyPositions``): each row goes to the instance
        that trades its instrument; rows no instance trades are kept as orphans."""
        by_inst: dict[int, dict[int, tuple[int, int]]] = {t: {} for t in self.instances}
        self.orphans.clear()
        for r in rows:
            token, qty = int(r["instrument_token"]), int(r["quantity"])
            owner = next((t for t, inst in self.instances.items() if token in inst.traded_tokens()), None)
            if owner is None:
                if qty:
                    self.orphans[token] = qty
            else:
                by_inst[owner][token] = (qty, int(r.get("average_price", 0)))
        for t, positions in by_inst.items():
            self.instances[t].book.adopt(positions, seq)

    def snapshot(self) -> dict[str, Any]:
        return {"symbols": {str(t): inst.snapshot() for t, inst in self.instances.items()},
                "orphans": {str(t): q for t, q in self.orphans.items()}}

    def restore(self, snap: dict[str, Any]) -> None:
        symbols = snap.get("symbols")
        if symbols is None:  # a snapshot from before per-symbol instances: its positions were guesses
            if snap.get("position"):
                log.warning("%s: old snapshot's positions dropped; the journal's are adopted on start",
                            self.strategy_id, extra={"user_id": self.user_id})
            return
        for t, inst_snap in symbols.items():
            token = int(t)
            if token not in self.instances:
                self.instances[token] = self.cls(self.strategy_id, self.user_id, self.params, token, self.ctx)
            self.instances[token].restore(inst_snap)
            for signal_id in self.instances[token].book.flights:
                self._own(signal_id, token)
        self.orphans = {int(t): int(q) for t, q in snap.get("orphans", {}).items()}
