"""Live trading on the trading facade (``Trading`` inherits it): Start (the symbols resolved, every live worker
up, all of them started or none), Stop (each open position protected or squared off) and the tokens a user is live
on — kept after a start or stop the ticker confirmed, else asked of the ticker worker."""

from __future__ import annotations

from collections.abc import Awaitable

from shared import messages as m
from gateway.trading_error import TradingError
from gateway.worker_commands import LIVE_SERVICES, from_reply, ready


class LiveControl:
    """Mixed into Trading; ``self`` provides settings, resolve, worker_health, live_command, command,
    ``live_tokens`` (user -> tokens) and ``_live_changes`` (user -> starts + stops so far)."""

    async def start_live(self, user_id: str, symbols: list[str | int], mode: str = "quote") -> dict:
        try:
            tick_mode = m.TickMode(mode)
        except ValueError:
            raise TradingError(400, f"mode must be one of {[x.value for x in m.TickMode]}", "mode") from None
        tokens = await self.resolve(user_id, symbols)
        if not tokens:
            raise TradingError(400, "pick at least one symbol to trade", "symbols")
        cap = self.settings.max_live_tokens_per_user
        if len(tokens) > cap:
            raise TradingError(400, f"{len(tokens)} symbols: at most {cap} live per user "
                                    "(KTA_MAX_LIVE_TOKENS_PER_USER)", "symbols", "quota")
        health = await self.worker_health()
        down = [s for s in LIVE_SERVICES if not health.get(s)]
        if down:
            raise TradingError(503, f"not started: the {', '.join(down)} worker(s) are not running")
        replies = await self.live_command(user_id, m.StartLive(tokens=tokens, mode=tick_mode))
        missing = [s for s in LIVE_SERVICES if s not in replies]
        errors = [r for r in replies.values() if isinstance(r, m.Error)]
        if missing or errors:
            await self.live_command(user_id, m.StopLive(cancel_open_orders=False))  # no half-started user
            if errors:
                raise from_reply(errors[0])
            raise TradingError(503, f"not started: no answer from the {', '.join(missing)} worker(s)")
        self.live_tokens[user_id] = tokens
        self._live_changed(user_id)
        return {"tokens": tokens, "mode": tick_mode.value,
                "replies": {s: r.data for s, r in replies.items() if isinstance(r, m.Ok)}}

    async def stop_live(self, user_id: str, cancel_open_orders: bool = True, positions: str = "protect") -> dict:
        """Stop every service for the user; the report pieces (reconcile, execution summary) by service.
        ``positions``: "protect" (each open position keeps a stop at the broker) or "square_off"."""
        health = await self.worker_health()  # only wait for workers that are up (logout must be quick)
        running = tuple(s for s in LIVE_SERVICES if health.get(s))
        replies = await self.live_command(user_id, m.StopLive(cancel_open_orders=cancel_open_orders,
                                                              positions=positions), expect=running)
        if "ticker" in replies:
            self.live_tokens[user_id] = []  # the ticker confirmed: stopped, whatever a later poll may say
        else:
            self.live_tokens.pop(user_id, None)  # unknown: ask the ticker next time
        self._live_changed(user_id)
        return {"stopped": sorted(replies),
                "missing": [s for s in LIVE_SERVICES if s not in replies],
                "replies": {s: (r.data if isinstance(r, m.Ok) else {"error": r.message}) for s, r in replies.items()}}

    def live_tokens_soon(self, user_id: str) -> Awaitable[list[int] | None]:
        """``live_tokens_of`` for a gather: the kept tokens as a finished future (no task to wrap a coroutine)."""
        if user_id in self.live_tokens:
            return ready(self.live_tokens[user_id])
        return self.live_tokens_of(user_id)

    async def live_tokens_of(self, user_id: str) -> list[int] | None:
        """The tokens the user is live on; after a gateway restart, as the ticker worker knows them (the
        symbols the trader started with, not every instrument the strategies added to the feed). None: not
        known — the ticker did not answer (down, restarting, slow), which is not "stopped"."""
        if user_id in self.live_tokens:
            return self.live_tokens[user_id]
        changes = self._live_changes.get(user_id, 0)
        try:
            data = await self.command(user_id, "ticker", m.GetStatus(), timeout=1.0)
        except TradingError:
            return None
        data = data or {}
        wanted = [int(t) for t in data.get("tokens", {})]  # the feed: the picks and what strategies added
        tokens = [int(t) for t in data.get("picked") or [] if int(t) in wanted] or wanted
        if self._live_changes.get(user_id, 0) == changes:  # no start or stop meanwhile: still true
            self.live_tokens[user_id] = tokens
        return tokens

    def _live_changed(self, user_id: str) -> None:
        self._live_changes[user_id] = self._live_changes.get(user_id, 0) + 1
