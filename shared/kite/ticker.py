"""An async client for Kite's ticker WebSocket that does not die quietly.

* Heartbeat watchdog: no frame (Kite sends a 1-byte heartbeat about every second) for
  ``stale_after`` seconds means the socket is dead, so it is closed and reconnected.
* Reconnects forever with exponential backoff and jitter, reports every attempt, alerts after 5.
* After a reconnect every token is subscribed again in its mode, and the gap is reported.
* A 403 on the upgrade means the access token is dead: ``TokenExpired``, not a retry loop.
* A 429 on the upgrade means the api_key's connections (3 per key) are all in use, e.g. by another
  user of a shared app: the token is fine, so an alert says so and the connection is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

from shared.kite.codec import decode_frame
from shared.messages import Tick

log = logging.getLogger("kta.ticker")

MODE_RANK = {"ltp": 0, "quote": 1, "full": 2}
TOO_MANY_CONNECTIONS = ("Kite refused the ticker connection (429): this api_key already has its 3 WebSocket "
                        "connections open (another kta process, another user of a shared app, or another "
                        "program); retrying with backoff")


class TokenExpired(Exception):
    pass


class Ticker:
    def __init__(
        self,
        api_key: str,
        access_token: str,
        root: str,
        *,
        on_ticks: Callable[[list[Tick]], Awaitable[None]] | None = None,
        on_order: Callable[[dict], Awaitable[None]],
        on_event: Callable[[str, dict], Awaitable[None]],
        on_frame: Callable[["Ticker", bytes, int], Awaitable[None]] | None = None,
        stale_after: float = 5.0,
        max_delay: float = 30.0,
        alert_after: int = 5,
        rng: random.Random | None = None,
    ) -> None:
        self.url = f"{root}?{urlencode({'api_key': api_key, 'access_token': access_token})}"
        self.modes: dict[int, str] = {}
        self.on_ticks, self.on_order, self.on_event = on_ticks, on_order, on_event
        self.on_frame = on_frame  # given: binary frames go to it undecoded (with this ticker and receive time)
        self.stale_after, self.max_delay, self.alert_after = stale_after, max_delay, alert_after
        self._rng = rng or random.Random(0)
        self._ws = None
        self._closed = False
        self.connects = 0

    # ---- subscriptions (also valid while disconnected; applied on (re)connect) ----------------

    async def subscribe(self, tokens: list[int], mode: str = "quote") -> None:
        for t in tokens:
            self.modes[t] = mode
        await self._send_modes({t: mode for t in tokens})

    async def unsubscribe(self, tokens: list[int]) -> None:
        for t in tokens:
            self.modes.pop(t, None)
        if self._ws is not None and tokens:
            with contextlib.suppress(ConnectionClosed):
                await self._ws.send(json.dumps({"a": "unsubscribe", "v": list(tokens)}))

    async def _send_modes(self, modes: dict[int, str]) -> None:
        if self._ws is None or not modes:
            return
        with contextlib.suppress(ConnectionClosed):
            await self._ws.send(json.dumps({"a": "subscribe", "v": list(modes)}))
            by_mode: dict[str, list[int]] = {}
            for t, mode in modes.items():
                by_mode.setdefault(mode, []).append(t)
            for mode, toks in by_mode.items():
                await self._ws.send(json.dumps({"a": "mode", "v": [mode, toks]}))

    # ---- connection loop ----------------------------------------------------------------------

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            with contextlib.suppress(Exception):
                await self._ws.close()

    async def run(self) -> None:
        """Connect and keep connected until ``close()``; raises TokenExpired on a dead token."""
        # Not stamina: a keep-alive loop, not a retried call (it never gives up, counts afresh after each
        # connection and reports every wait before taking it, with the feed's seeded jitter).
        attempt = 0
        gap_start = 0
        refused = False  # the last upgrade was answered 429 (alert once per streak, not every retry)
        while not self._closed:
            try:
                # compression=None: like the official client (no permessage-deflate offer), so
                # neither side spends CPU on zlib for every frame of the feed.
                async with websockets.connect(self.url, additional_headers={"X-Kite-Version": "3"},
                                              open_timeout=7, ping_interval=None, max_size=2**22,
                                              compression=None) as ws:
                    self._ws = ws
                    self.connects += 1
                    await self._send_modes(dict(self.modes))
                    if gap_start:
                        end = time.time_ns()
                        await self.on_event("reconnected", {"attempt": attempt, "gap_start": gap_start,
                                                            "gap_end": end})
                    else:
                        await self.on_event("connected", {})
                    attempt, gap_start, refused = 0, 0, False
                    await self._pump(ws)
            except InvalidStatus as e:
                status = e.response.status_code
                if status == 403:
                    await self.on_event("token_expired", {"detail": "403 on the ticker upgrade"})
                    raise TokenExpired("the broker refused the access token (403)") from e
                if status == 429 and not refused:  # the token is fine: the api_key's 3 connections are taken
                    await self.on_event("alert", {"attempt": attempt + 1, "detail": TOO_MANY_CONNECTIONS})
                refused = status == 429
                log.warning("ticker upgrade refused: HTTP %s", status)
            except (OSError, ConnectionClosed, asyncio.TimeoutError, websockets.exceptions.WebSocketException) as e:
                log.info("ticker connection lost: %r", e)
            finally:
                self._ws = None
            if self._closed:
                break
            if not gap_start:
                gap_start = time.time_ns()
                await self.on_event("disconnected", {"gap_start": gap_start})
            attempt += 1
            delay = min(self.max_delay, 0.5 * 2 ** (attempt - 1)) * (0.5 + self._rng.random())
            await self.on_event("reconnecting", {"attempt": attempt, "delay": delay})
            if attempt == self.alert_after:
                await self.on_event("alert", {"attempt": attempt,
                                              "detail": f"ticker still disconnected after {attempt} attempts"})
            await asyncio.sleep(delay)

    async def _pump(self, ws) -> None:
        while not self._closed:
            try:
                frame = await asyncio.wait_for(ws.recv(), timeout=self.stale_after)
            except asyncio.TimeoutError:
                log.warning("ticker silent for %.1fs: treating the socket as dead", self.stale_after)
                await ws.close()
                return
            if isinstance(frame, bytes):
                if len(frame) < 4:  # a heartbeat
                    continue
                try:
                    if self.on_frame is not None:  # it validates the whole frame before using any of it
                        await self.on_frame(self, frame, time.time_ns())
                        continue
                    ticks = decode_frame(frame, time.time_ns())
                except ValueError as e:
                    await self.on_event("error", {"detail": f"malformed frame dropped: {e}"})
                    continue
                if ticks and self.on_ticks is not None:
                    await self.on_ticks(ticks)
                continue
            try:
                msg = json.loads(frame)
            except ValueError:
                continue
            kind = msg.get("type") if isinstance(msg, dict) else None
            if kind == "order":
                data = msg.get("data") if isinstance(msg.get("data"), dict) else msg
                await self.on_order(data)
            elif kind == "error":
                await self.on_event("error", {"detail": str(msg.get("data"))})
