"""A lean HTTP/1.1 transport for httpx: kta's calls to the broker over keep-alive connections, TLS
(``https://``, the real Kite) or plain (``http://``, kite_sim).

httpx's default transport (httpcore: anyio, a connection-pool state machine, h11) costs ~0.7 ms of
CPU per request here, three times httpx's own client layer; an order, its stop, the stop's cancel and
the fills' trade reads made it about a quarter of the execution worker's CPU per order (issue #18).
This one writes the request in one piece and reads the answer with asyncio's stream reader
(Content-Length, chunked, or until close), keeping idle connections for reuse (a connection the server
closed meanwhile is dropped and a new one opened). TLS uses the process's one context
(``shared.kite.tls``: certificates and host names verified), so kite_sim over TLS in the tests takes the
code path the real Kite does. A forward proxy (an egress) stays on httpx's own transport.

The errors are httpx's, raised where httpcore would raise them, so ``KiteClient`` maps them as before:
nothing was written → ``ConnectError``/``ConnectTimeout``/``PoolTimeout`` (NotSent; a certificate that
does not verify is a ConnectError too); written, answer lost → ``ReadTimeout``/``ReadError``/
``RemoteProtocolError`` (the outcome is unknown: an order is looked up by its tag, never sent again).
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time

import httpx

from shared.kite import tls

KEEPALIVE_EXPIRY = 4.0  # s an idle connection is kept: below uvicorn's 5 s, so the server never closes it under us


class _Conn:
    __slots__ = ("reader", "writer", "idle_since", "expired")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.expired = False

    def expire(self) -> None:
        """The answer's time is up: the connection is dropped, so the read waiting on it ends (the timer in
        ``exchange``, not ``asyncio.wait_for``: a task each answer cost ~20 µs of CPU, issue #18; nor
        ``asyncio.timeout``, which would bind to the caller's task in an eager first step, shared/eager.py)."""
        self.expired = True
        self.writer.transport.abort()

    def usable(self) -> bool:
        return (not self.writer.is_closing() and not self.reader.at_eof()
                and time.monotonic() - self.idle_since < KEEPALIVE_EXPIRY)

    def close(self) -> None:
        self.writer.close()


class LeanTransport(httpx.AsyncBaseTransport):
    def __init__(self, max_connections: int = 20, max_keepalive: int = 10, local_address: str = "",
                 ssl_context: ssl.SSLContext | None = None) -> None:
        """``local_address``: the source address connections leave from (an egress bound to the app's
        static IP); ``ssl_context``: for https, the process's one context unless given."""
        self._slots = asyncio.Semaphore(max_connections)
        self._max_keepalive = max_keepalive
        self._local = (local_address, 0) if local_address else None
        self._ssl = ssl_context
        self._idle: dict[tuple[str, str, int], list[_Conn]] = {}
        self.opened = 0  # connections opened so far (keep-alive reuses them)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        url = request.url
        if url.scheme not in ("http", "https"):
            raise httpx.UnsupportedProtocol(f"the broker's URL must be http or https, not {url.scheme}",
                                            request=request)
        key = (url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        body = await request.aread()
        head = b"".join((request.method.encode(), b" ", url.raw_path, b" HTTP/1.1\r\n",
                         *(b"%s: %s\r\n" % kv for kv in request.headers.raw), b"\r\n"))
        status, headers, content = await self.exchange(key, request.method, head, body,
                                                       request.extensions.get("timeout") or {}, request)
        return httpx.Response(status, headers=headers, stream=httpx.ByteStream(content), request=request,
                              extensions={"http_version": b"HTTP/1.1"})

    async def exchange(self, key: tuple[str, str, int], method: str, head: bytes, body: bytes, timeout: dict,
                       request: httpx.Request | None = None) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        """One request written whole (``head``: request line and headers, through the empty line) to
        ``key``'s (scheme, host, port) server over a kept-alive connection; its (status, headers, body).
        ``timeout``: httpx's {"connect", "read", "pool"} seconds. Raises httpx's errors (``request``: theirs)."""
        if self._slots.locked():  # every connection busy: wait for one, up to the pool timeout
            try:
                await asyncio.wait_for(self._slots.acquire(), timeout.get("pool"))
            except asyncio.TimeoutError:
                raise httpx.PoolTimeout("no connection to the broker free in time", request=request) from None
        else:  # taken at once: no task, no turn of the loop before the request is written
            await self._slots.acquire()
        try:
            conn = self._take(key) or await self._connect(key, timeout.get("connect"), request)
            read = timeout.get("read")
            timer = asyncio.get_running_loop().call_later(read, conn.expire) if read is not None else None
            try:
                conn.writer.write(head + body if body else head)
                status, headers, content, keep = await self._answer(conn, method)
                if conn.expired:  # a body read until the close: the close was the timer's
                    raise ConnectionResetError("closed at the read timeout")
            except (asyncio.IncompleteReadError, ConnectionError, OSError, ValueError, asyncio.LimitOverrunError) as e:
                conn.close()
                if conn.expired:
                    raise httpx.ReadTimeout("the broker did not answer in time", request=request) from None
                if isinstance(e, (ValueError, asyncio.LimitOverrunError)):
                    raise httpx.RemoteProtocolError(f"malformed answer: {e!r}", request=request) from e
                raise httpx.ReadError(f"the connection dropped before the answer: {e!r}", request=request) from e
            except BaseException:  # cancelled mid-answer: the connection's state is unknown
                conn.close()
                raise
            finally:
                if timer is not None:
                    timer.cancel()
            if keep:
                self._put(key, conn)
            else:
                conn.close()
        finally:
            self._slots.release()
        return status, headers, content

    def _take(self, key: tuple[str, str, int]) -> _Conn | None:
        idle = self._idle.get(key)
        while idle:
            conn = idle.pop()
            if conn.usable():
                return conn
            conn.close()
        return None

    def _put(self, key: tuple[str, str, int], conn: _Conn) -> None:
        idle = self._idle.setdefault(key, [])
        if len(idle) >= self._max_keepalive:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        idle.append(conn)

    async def _connect(self, key: tuple[str, str, int], timeout: float | None,
                       request: httpx.Request | None) -> _Conn:
        scheme, host, port = key
        secure = (self._ssl or tls.context()) if scheme == "https" else None
        try:
            reader, writer = await asyncio.wait_for(asyncio.open_connection(
                host, port, ssl=secure, server_hostname=host if secure else None, local_addr=self._local,
                limit=2**20), timeout)
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {host}:{port} timed out", request=request) from None
        except OSError as e:  # refused, unreachable, a certificate that does not verify (ssl.SSLError)
            raise httpx.ConnectError(f"cannot connect to {scheme}://{host}:{port}: {e}", request=request) from e
        self.opened += 1
        return _Conn(reader, writer)

    @staticmethod
    async def _answer(conn: _Conn, method: str) -> tuple[int, list[tuple[bytes, bytes]], bytes, bool]:
        await conn.writer.drain()
        reader = conn.reader
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head[:-4].split(b"\r\n")
        version, code = lines[0].split(b" ", 2)[:2]
        status = int(code)
        headers = []
        for line in lines[1:]:
            name, sep, value = line.partition(b":")
            if not sep:
                raise ValueError(f"header line without a colon: {line[:80]!r}")
            headers.append((name.strip(), value.strip()))
        fields = {k.lower(): v for k, v in headers}
        keep = version == b"HTTP/1.1" and fields.get(b"connection", b"").lower() != b"close"
        if method == "HEAD" or status in (204, 304) or status < 200:
            content = b""
        elif b"chunked" in fields.get(b"transfer-encoding", b"").lower():
            parts = []
            while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
                parts.append((await reader.readexactly(size + 2))[:-2])
            while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers, then the empty line
                pass
            content = b"".join(parts)
            headers = [(k, v) for k, v in headers if k.lower() != b"transfer-encoding"]
        elif b"content-length" in fields:
            content = await reader.readexactly(int(fields[b"content-length"]))
        else:  # the body runs until the server closes the connection
            content, keep = await reader.read(), False
        return status, headers, content, keep

    async def aclose(self) -> None:
        conns = [conn for idle in self._idle.values() for conn in idle]
        self._idle.clear()
        for conn in conns:
            conn.close()
        for conn in conns:  # a TLS connection's close_notify is sent, its socket released
            with contextlib.suppress(OSError, ssl.SSLError):
                await conn.writer.wait_closed()
