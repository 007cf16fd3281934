"""One connection to Kite Connect (or kite_sim) for one user: the HTTP clients (a per-user egress for order
calls, the 2026 static-IP rule), the headers, client-side rate limits, the broker's answers turned into msgspec
data or typed exceptions with its message, and the retry policy — reads retried with backoff, writes sent again
only when the broker provably did not take them. ``client.KiteClient`` puts Kite's API on top of it."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from decimal import Decimal
from typing import Any, Self

import httpx
import stamina

from shared.kite import errors, tls, waits
from shared.kite.egress import Egress
from shared.kite.http1 import LeanTransport
from shared.kite.lean import Answer, LeanRequests
from shared.kite.ratelimit import RateLimiter, endpoint_class

log = logging.getLogger("kta.kite")
READ_RETRIES = 3
PLACE_RETRIES = 3  # only for calls the broker provably did not take
READ_WAIT, PLACE_WAIT, WAIT_MAX, WAIT_JITTER = 0.2, 0.25, 2.0, 0.1  # s: the first retry's wait, the cap, jitter


def form_value(value: Any) -> str:
    """A form field as Kite reads it: plain decimals, ``YYYY-mm-dd HH:MM:SS``, ``true``/``false``."""
    if isinstance(value, float):
        return format(Decimal(str(value)).normalize(), "f")
    if isinstance(value, Decimal):
        return format(value.normalize(), "f")
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


class KiteConnection:
    """One user's calls to Kite: where they leave from, how fast, with which headers, what comes back."""

    def __init__(
        self,
        api_key: str,
        access_token: str | None = None,
        *,
        root: str = "https://api.kite.trade",
        login_url: str = "https://kite.zerodha.com/connect/login",
        timeout: float = 7.0,
        proxy: str | None = None,
        local_address: str | None = None,
        on_token_expired: Callable[[errors.TokenException], Any] | None = None,
        rate_limiter: RateLimiter | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.api_key = api_key
        self.access_token = access_token
        self.root = root.rstrip("/")
        self._login_url = login_url
        self.on_token_expired = on_token_expired
        self.limiter = rate_limiter or RateLimiter()
        self.timeout = timeout
        self._closing: set[asyncio.Task] = set()
        # The client that replaced this one when the user's session moved to another api_key (KiteClients): a call
        # that finds this one closed before it left is sent there instead (nothing of it reached the broker).
        self.successor: KiteConnection | None = None
        self.egress = Egress(proxy or "", local_address or "")
        self._lean: dict[httpx.AsyncClient, LeanRequests] = {}  # a client over a LeanTransport -> its lean path
        self._http = self._client(timeout, transport)
        # Kite takes order calls only from the app's static IP: they, and only they, leave through the
        # user's egress (reads stay direct, so a dead proxy never blinds reconciliation).
        self._orders_http = self._egress_client()

    def _egress_client(self) -> httpx.AsyncClient:
        if not self.egress.configured:
            return self._http
        bound = LeanTransport(local_address=self.egress.local_address) if self.egress.local_address else None
        return self._client(self.timeout, bound, self.egress.proxy)

    def use_session(self, access_token: str, *, proxy: str = "", local_address: str = "") -> None:
        """A new access token (the daily login) and/or egress for the same user, applied in place: whoever
        holds this client goes on using it. Raises EgressError for an egress that can never work."""
        self.access_token = access_token
        egress = Egress(proxy or "", local_address or "")
        if egress != self.egress:
            old = self._orders_http
            self.egress = egress
            self._orders_http = self._egress_client()
            if old is not self._http:  # closed once its requests in flight are done
                self._lean.pop(old, None)
                task = asyncio.get_running_loop().create_task(old.aclose())
                self._closing.add(task)
                task.add_done_callback(self._closing.discard)

    def _client(self, timeout: float, transport: httpx.AsyncBaseTransport | None,
                proxy: str | None = None) -> httpx.AsyncClient:
        if transport is None and not proxy:
            transport = LeanTransport()  # http1.py: httpcore's CPU per request spared; a proxy stays on httpx's
        headers = {"X-Kite-Version": "3", "User-Agent": "kta/0.1"}
        client = httpx.AsyncClient(
            base_url=self.root, timeout=timeout, proxy=proxy or None, transport=transport, trust_env=False,
            verify=tls.context(), headers=headers,
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
        )
        if isinstance(transport, LeanTransport) and not proxy:  # its calls skip httpx's client layer (lean.py)
            self._lean[client] = LeanRequests(self.root, transport, headers, timeout)
        return client

    async def aclose(self) -> None:
        await self._http.aclose()
        if self._orders_http is not self._http:
            await self._orders_http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.aclose()

    def login_url(self) -> str:
        return f"{self._login_url}?v=3&api_key={self.api_key}"

    # ---- transport ----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"token {self.api_key}:{self.access_token}"} if self.access_token else {}

    async def _send(self, method: str, path: str, *, params=None, data=None, json=None, auth=True
                    ) -> httpx.Response | Answer:
        cls = endpoint_class(method, path)
        egress = cls == "orders" and self.egress.configured
        if egress:
            problem = await self.egress.problem()
            if problem:
                raise errors.EgressUnavailable(f"orders of this account leave from {self.egress.describe()}, "
                                               f"which cannot be used: {problem}. Nothing was sent.", 503)
        await self.limiter.acquire(cls)
        http = self._orders_http if egress else self._http  # as it is now: the waits above may have outlived one
        if http.is_closed:
            raise errors.ClientClosed(f"{method} {path} not sent: the client was closed while the call waited")
        if cls == "orders" and method == "POST":
            waits.handed(data.get("tag") if data else None)
        lean = self._lean.get(http)
        hooked = http.event_hooks["request"] or http.event_hooks["response"]  # httpx's path runs them
        try:
            with waits.waiting(waits.BROKER):
                if lean is not None and json is None and not hooked:
                    return await lean.send(method, path, params, data, self._headers() if auth else None)
                return await http.request(method, path, params=params, data=data, json=json,
                                          headers=self._headers() if auth else None)
        except RuntimeError as e:  # httpx: "Cannot send a request, as the client has been closed" (nothing sent)
            if not http.is_closed:
                raise
            raise errors.ClientClosed(f"{method} {path} not sent: {e}") from e
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.ProxyError) as e:
            raise errors.NotSent(f"cannot reach the broker: {e!r}", 503) from e  # no request was written
        except httpx.TimeoutException as e:
            raise errors.NetworkException(f"timeout talking to the broker: {e!r}", 504) from e
        except httpx.HTTPError as e:
            raise errors.NetworkException(f"the connection to the broker failed: {e!r}", 503) from e

    def _parse(self, r: httpx.Response | Answer, auth: bool = True) -> Any:
        ctype = r.headers.get("content-type", "")
        if "json" in ctype:
            try:
                body = r.json()
            except ValueError:
                raise errors.DataException(f"unparseable JSON from the broker (HTTP {r.status_code})", 502) from None
            if r.status_code >= 400 or body.get("status") == "error" or body.get("error_type"):
                err = errors.from_response(r.status_code, body)
                if isinstance(err, errors.TokenException) and auth and self.on_token_expired:
                    self.on_token_expired(err)
                raise err
            return body.get("data")
        if "csv" in ctype and r.status_code < 400:
            return r.text
        raise errors.DataException(f"unexpected response {r.status_code} {ctype!r} from the broker", r.status_code)

    async def _request(self, method: str, path: str, *, params=None, data=None, json=None, auth=True) -> Any:
        """Reads are retried with backoff on a 429 or a network error; writes never blindly."""
        async def call() -> Any:
            return self._parse(await self._send(method, path, params=params, data=data, json=json, auth=auth), auth)
        try:
            return await _retried(call, errors.NetworkException, READ_RETRIES + 1 if method == "GET" else 1,
                                  f"{method} {path}")
        except errors.ClientClosed as e:
            if self.successor is None:
                raise
            # Replaced by the user's client of another api_key while this call waited (a rate-limit slot, a retry's
            # back-off): it was never sent, so the new client sends it, once — a placement too, which cannot be a
            # duplicate (one whose answer was lost is looked up by its tag, never sent again: _order_call).
            log.info("%s: %s; sent through the client that replaced it", self.api_key, e.message)
            return await self.successor._request(method, path, params=params, data=data, json=json, auth=auth)

    @staticmethod
    def _form(**fields: Any) -> dict[str, str]:
        return {k: form_value(v) for k, v in fields.items() if v is not None}

    async def _order_call(self, method: str, path: str, form: dict[str, Any]) -> Any:
        """A place, modify, cancel or eDIS authorisation: sent again only when the broker provably did not take
        it (a 429 from its gateway, a connection that never opened), a bounded number of times after a backoff."""
        return await _retried(lambda: self._request(method, path, data=form or None),
                              (errors.TooManyRequests, errors.NotSent), PLACE_RETRIES + 1, f"{method} {path}",
                              wait_initial=PLACE_WAIT)


async def _retried(call: Callable[[], Awaitable[Any]], on, attempts: int, what: str,
                   wait_initial: float = READ_WAIT) -> Any:
    """``call()``, and after a failure with ``on`` up to ``attempts`` in all, waiting ``wait_initial``, then twice
    as long each time (at most ``WAIT_MAX``), plus up to ``WAIT_JITTER``. The first attempt runs outside stamina:
    building tenacity's retry state for every call cost more CPU than the call's own request line and headers
    (~3% of the execution worker's, two states an order: issue #18), and nearly every call succeeds at once."""
    try:
        return await call()
    except on as e:
        if attempts <= 1:
            raise
        log.info("%s failed (%r): trying again in %.2f s", what, e, wait_initial)
    await asyncio.sleep(wait_initial + random.uniform(0, WAIT_JITTER))
    async for attempt in stamina.retry_context(on=on, attempts=attempts - 1, wait_initial=min(2 * wait_initial, WAIT_MAX),
                                               wait_max=WAIT_MAX, wait_jitter=WAIT_JITTER, timeout=None):
        with attempt:
            return await call()
    raise AssertionError("unreachable")
