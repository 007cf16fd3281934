"""ticker_worker: broker WebSockets in, ticks and order updates out (``kta worker ticker``)."""

from __future__ import annotations


from shared import messages as m
from shared import service, subjects
from shared.bus import Bus
from shared.config import Settings
from shared.exchange_clock import ExchangeClock
from shared.broker_sessions import vault_for, watch_sessions
from ticker_worker.hub import TickerHub, TokenLimitExceeded
from ticker_worker.wanted import WantedStore


class TickerWorker:
    def __init__(self, bus: Bus, settings: Settings) -> None:
        self.bus = bus
        self.hub = TickerHub(bus, settings.kite_ws_root, store=WantedStore(bus),
                             stale_after=settings.feed_stale_seconds, hours=settings.feed_hours,
                             user_ticks=settings.user_ticks)
        self.vault = vault_for(settings)

    async def start(self) -> "TickerWorker":
        await self.hub.restore()  # before the sessions: each live user's feed opens with its instruments
        self.bus.spawn(self._watch_sessions(), name="sessions")
        self.bus.spawn(self.hub.freshness.run(), name="freshness")
        await self.bus.serve(subjects.cmd_wildcard("live"), self.on_live, queue="ticker-live")
        await self.bus.serve(subjects.cmd_wildcard("ticker"), self.on_command, queue="ticker")
        return self

    async def _watch_sessions(self) -> None:
        async for user_id, live in watch_sessions(self.bus, self.vault):
            await self.hub.session_changed(user_id, live)

    async def on_live(self, cmd, user_id: str, msg) -> m.Ok | m.Error:
        match cmd:
            case m.StartLive():
                connected = await self._subscribe(user_id, cmd)
                if isinstance(connected, m.Error):
                    return connected
                if not connected:
                    return m.Error(code="broker_not_connected", message="Connect your Kite account first.")
                await self.hub.pick(user_id, list(cmd.tokens))
                return m.Ok(data={"tokens": len(cmd.tokens), "mode": cmd.mode.value})
            case m.StopLive():
                await self.hub.unsubscribe(user_id)  # and its picks
                return m.Ok(data={"unsubscribed": True})
        return m.Error(code="unsupported", message=f"{type(cmd).__name__} is not a live command")

    async def _subscribe(self, user_id: str, cmd: m.StartLive | m.Subscribe) -> bool | m.Error:
        """The user's feed subscribed to the command's tokens: whether it is connected, or the token limit's error."""
        try:
            return await self.hub.subscribe(user_id, list(cmd.tokens), cmd.mode.value)
        except TokenLimitExceeded as e:
            return m.Error(code="token_limit", message=str(e))

    async def on_command(self, cmd, user_id: str, msg) -> m.Ok | m.Error:
        match cmd:
            case m.Subscribe():
                connected = await self._subscribe(user_id, cmd)
                if isinstance(connected, m.Error):
                    return connected
                return m.Ok(data={"connected": connected, "tokens": len(cmd.tokens)})
            case m.Unsubscribe():
                await self.hub.unsubscribe(user_id, list(cmd.tokens))
                return m.Ok(data={"tokens": len(cmd.tokens)})
            case m.GetStatus():
                feed = self.hub.feeds.get(user_id)
                return m.Ok(data={"connected": feed is not None and feed.connected,
                                  "tokens": self.hub.wanted.get(user_id, {}),
                                  "picked": self.hub.picked.get(user_id, []),
                                  "feed": self.hub.freshness.report(user_id)})
        return m.Error(code="unsupported", message=f"{type(cmd).__name__} is not a ticker command")

    @property
    def exchange_clock(self) -> ExchangeClock:
        return self.hub.exchange

    def status(self) -> dict:
        return {"users": len(self.hub.feeds), "ticks_published": self.hub.published,
                "stale_users": self.hub.freshness.stale_users(), **self.hub.events}

    async def close(self) -> None:
        await self.hub.close()


amain, run = service.main("ticker", TickerWorker)
