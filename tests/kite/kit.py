"""Small real-socket helpers for the Kite client tests: a transport that records what went over the
wire, and a threaded HTTP server on 127.0.0.1 that records each peer (and can forward as a proxy)."""

from __future__ import annotations

import contextlib
import http.server
import threading
from collections.abc import Callable

import httpx

from shared.kite import tls
from shared.kite.http1 import LeanTransport


class RecordingTransport(LeanTransport):
    """The Kite client's own transport (shared/kite/http1.py), keeping (method, path, status) of every exchange
    (status None: no answer came)."""

    def __init__(self, **kw) -> None:
        super().__init__(**kw)
        self.exchanges: list[tuple[str, str, int]] = []

    async def exchange(self, key, method, head, body, timeout, request=None):
        path = head.split(b" ", 2)[1].split(b"?")[0].decode()
        try:
            answer = await super().exchange(key, method, head, body, timeout, request)
        except httpx.HTTPError:
            self.exchanges.append((method, path, None))  # no answer (refused, lost, timed out)
            raise
        self.exchanges.append((method, path, answer[0]))
        return answer

    def count(self, method: str | None = None, prefix: str = "", status: int | None = None) -> int:
        return sum(1 for m, p, s in self.exchanges
                   if (method is None or m == method) and p.startswith(prefix) and (status is None or s == status))


@contextlib.contextmanager
def http_server(respond: Callable[[http.server.BaseHTTPRequestHandler], tuple[int, str, bytes] | None]):
    """Serve ``respond(handler) -> (status, content_type, body)`` (None: it wrote the answer itself) on 127.0.0.1:<free port> in a thread.
    Yields ``(root_url, seen)`` where ``seen`` lists (peer_host, method, request_target)."""
    seen: list[tuple[str, str, str]] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _any(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.body = self.rfile.read(length) if length else b""  # drained: the connection is kept alive
            seen.append((self.client_address[0], self.command, self.path))
            answer = respond(self)
            if answer is None:  # respond wrote its own answer
                return
            status, ctype, body = answer
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _any

        def log_message(self, *args) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def forward_to(handler: http.server.BaseHTTPRequestHandler) -> tuple[int, str, bytes]:
    """A plain-HTTP forward proxy: the request line carries the absolute URL of the target."""
    body = handler.body or None
    headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "proxy-connection", "connection")}
    r = httpx.request(handler.command, handler.path, headers=headers, content=body, timeout=10, verify=tls.context())
    return r.status_code, r.headers.get("content-type", "application/json"), r.content


INFY = "NSE:INFY"


async def tagged(kite, tag: str) -> list:
    """The orders in ``kite``'s book with ``tag``."""
    return [o for o in await kite.orders() if o.tag == tag]
