"""The kill switch of one user: ACTIVE → REDUCING (past the warning threshold: only exits) → HALTED
(past the daily loss limit: nothing new, strategies deactivated). Driven by realised + mark-to-market
P&L; it latches — HALTED until a manual ``reset``, REDUCING until a reset or the next trading day —
and its state lives in the journal so a restarted worker comes back tripped."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

import msgspec

from shared import ist
from shared.messages import KillSwitchState, RiskLimits, RiskState, format_inr

HaltListener = Callable[[RiskState], None]


class RiskStore(Protocol):
    """Where risk decisions and the kill switch's state are kept: the execution worker's journal,
    or ``MemoryRiskStore`` in a backtest."""

    def record_risk_event(self, user_id: str, *, code: str, message: str, signal_id: str = "",
                          state: str = "") -> None: ...

    def kill_switch(self, user_id: str) -> dict | None: ...

    def save_kill_switch(self, user_id: str, *, state: str, reason: str, tripped_at: int, day: str,
                         baseline: int = 0, limits: dict | None = None) -> None: ...


class MemoryRiskStore:
    """A RiskStore in memory (backtests, tests): risk events in a list, the switch in a dict."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.switches: dict[str, dict] = {}

    def record_risk_event(self, user_id: str, *, code: str, message: str, signal_id: str = "",
                          state: str = "") -> None:
        self.events.append({"user_id": user_id, "code": code, "message": message, "signal_id": signal_id,
                            "state": str(state)})

    def kill_switch(self, user_id: str) -> dict | None:
        return self.switches.get(user_id)

    def save_kill_switch(self, user_id: str, **saved) -> None:
        self.switches[user_id] = saved


class KillSwitch:
    def __init__(self, user_id: str, limits: RiskLimits | None, store: RiskStore,
                 clock: Callable[[], float] = time.time, defaults: RiskLimits | None = None) -> None:
        """``limits=None`` takes the limits saved for the user, else ``defaults`` (``KTA_RISK``), else
        RiskLimits(); limits given here or by ``set_limits`` are the user's own and are saved."""
        self.user_id = user_id
        self.defaults = defaults or RiskLimits()
        self.limits = limits or self.defaults
        self.custom = limits is not None  # the user's own limits (saved), not the defaults
        self.store = store
        self.clock = clock
        self.state = KillSwitchState.ACTIVE
        self.reason = ""
        self.tripped_at = 0
        self.baseline = 0  # P&L level the day's loss is measured from (moved by a manual reset)
        self.day = ist.day(clock())
        self.realised = 0
        self.unrealised = 0
        self.heard = False  # a day P&L was fed since this switch was made (a restart knows its baseline, not the P&L)
        self.exposure = 0
        self._halt_listeners: list[HaltListener] = []
        saved = store.kill_switch(user_id)
        if saved is not None:
            self.state = KillSwitchState(saved["state"])
            self.reason, self.tripped_at, self.day = saved["reason"], saved["tripped_at"], saved["day"]
            self.baseline = saved["baseline"]
            own = msgspec.convert(saved["limits"], RiskLimits) if saved["limits"] else None
            # an older kta saved the built-in defaults for everyone: those are not the user's own
            if limits is None and own is not None and own != RiskLimits():
                self.limits, self.custom = own, True
        if saved is None or limits is not None:
            self._save()

    # ---- reading

    @property
    def day_pnl(self) -> int:
        return self.realised + self.unrealised

    @property
    def loss(self) -> int:
        """Today's loss counted against the limit (positive when losing); none is known before a P&L is fed:
        a reset in profit saved its baseline, and 0 - baseline read as a loss would halt a restarted worker."""
        return max(0, self.baseline - self.day_pnl) if self.heard else 0

    @property
    def warn_level(self) -> int:
        return self.limits.max_daily_loss * int(self.limits.warn_daily_loss_pct * 100) // 10_000

    @property
    def halted(self) -> bool:
        return self.state is KillSwitchState.HALTED

    def snapshot(self) -> RiskState:
        return RiskState(user_id=self.user_id, ts=time.time_ns(), state=self.state, day_pnl=self.day_pnl,
                         realised=self.realised, unrealised=self.unrealised, exposure=self.exposure,
                         reason=self.reason, tripped_at=self.tripped_at, limits=self.limits, loss=self.loss)

    # ---- driving

    def on_halt(self, listener: HaltListener) -> None:
        """Called once each time the switch trips to HALTED (deactivate strategies, cancel, flatten)."""
        self._halt_listeners.append(listener)

    def on_pnl(self, realised: int, unrealised: int, source: str, exposure: int | None = None) -> RiskState | None:
        """New day P&L (paise) from ``source`` (positions loop, fill, tick). Returns the new RiskState
        when the switch changed state, else None."""
        self.realised, self.unrealised, self.heard = realised, unrealised, True
        if exposure is not None:
            self.exposure = exposure
        loss = self.loss  # on every tick of a held instrument: once
        if self.state is not KillSwitchState.HALTED and loss >= self.limits.max_daily_loss:
            return self._trip(KillSwitchState.HALTED, "DAILY_LOSS_LIMIT",
                              f"{self._loss_words()} reached the daily loss limit "
                              f"{format_inr(self.limits.max_daily_loss)} ({source})")
        if self.state is KillSwitchState.ACTIVE and loss >= self.warn_level:
            return self._trip(KillSwitchState.REDUCING, "DAILY_LOSS_WARNING",
                              f"{self._loss_words()} passed {self.limits.warn_daily_loss_pct:g}% of the "
                              f"daily loss limit {format_inr(self.limits.max_daily_loss)}: exits only ({source})")
        return None

    def halt(self, reason: str) -> RiskState | None:
        """Trip by hand (or on an operational emergency)."""
        if self.halted:
            return None
        return self._trip(KillSwitchState.HALTED, "KILL_SWITCH_MANUAL", reason)

    def reset(self, reason: str) -> RiskState:
        """The manual reset: back to ACTIVE, the day's loss measured afresh from the current P&L."""
        self.store.record_risk_event(self.user_id, code="KILL_SWITCH_RESET", message=reason,
                                     state=KillSwitchState.ACTIVE)
        self.state, self.reason, self.tripped_at = KillSwitchState.ACTIVE, "", 0
        self.baseline = self.day_pnl
        self._save()
        return self.snapshot()

    def new_day(self, day: str) -> RiskState | None:
        """First moment of a new trading day: P&L baseline to zero; REDUCING ends, HALTED stays."""
        changed = self.state is KillSwitchState.REDUCING
        self.day, self.baseline, self.realised, self.unrealised, self.heard = day, 0, 0, 0, True
        if changed:
            self.state, self.reason, self.tripped_at = KillSwitchState.ACTIVE, "", 0
        self._save()
        return self.snapshot() if changed else None

    def set_limits(self, limits: RiskLimits, by: str = "") -> None:
        """The user's limits from now on (``by`` says who, for the audit trail)."""
        changed = {k: (getattr(self.limits, k), v) for k, v in msgspec.structs.asdict(limits).items()
                   if getattr(self.limits, k) != v}
        self.limits, self.custom = limits, True
        self._save()
        if changed:
            what = ", ".join(f"{k} {old} → {new}" for k, (old, new) in sorted(changed.items()))
            self.store.record_risk_event(self.user_id, code="RISK_LIMITS_CHANGED",
                                         message=f"{what}{f' (by {by})' if by else ''}", state=self.state)

    # ---- internals

    def _loss_words(self) -> str:
        """What the switch counted: the day P&L, or after a reset the loss since it (the day's figure beside)."""
        if not self.baseline:
            return f"day P&L {format_inr(self.day_pnl)}"
        return f"loss since the reset {format_inr(self.loss)} (day P&L {format_inr(self.day_pnl)})"

    def _trip(self, state: KillSwitchState, code: str, message: str) -> RiskState:
        self.state, self.reason, self.tripped_at = state, message, int(self.clock() * 1e9)
        self.store.record_risk_event(self.user_id, code=code, message=message, state=state)
        self._save()
        snap = self.snapshot()
        if state is KillSwitchState.HALTED:
            for listener in self._halt_listeners:
                listener(snap)
        return snap

    def _save(self) -> None:
        self.store.save_kill_switch(self.user_id, state=self.state, reason=self.reason, tripped_at=self.tripped_at,
                                    day=self.day, baseline=self.baseline,
                                    limits=msgspec.to_builtins(self.limits) if self.custom else None)
