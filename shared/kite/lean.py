"""A Kite call written as bytes straight to the lean transport (``http1.LeanTransport``), httpx's client layer
skipped: its URL parsing and merging, header and cookie merging, and request and response models cost ~0.25 ms
of CPU a request here, as much as the execution worker's whole decision on a signal (issue #18). The request
on the wire is the one httpx writes (the client's headers, the form or query encoded the same way); the answer
keeps httpx.Response's names for ``KiteConnection._parse``; the errors are the transport's, httpx's own."""

from __future__ import annotations

import json
import re
import zlib
from urllib.parse import quote, quote_plus, urlsplit

import httpx

from shared.kite.http1 import LeanTransport

BODY_METHODS = ("POST", "PUT", "PATCH")  # an empty body is still announced (httpx: Content-Length: 0)


class Answer:
    """The broker's answer, read as ``KiteConnection._parse`` reads an httpx.Response."""

    __slots__ = ("status_code", "headers", "content")

    def __init__(self, status_code: int, headers: dict[str, str], content: bytes) -> None:
        self.status_code = status_code
        self.headers = headers  # lower-case names
        self.content = content

    def json(self):
        return json.loads(self.content)

    @property
    def text(self) -> str:
        charset = self.headers.get("content-type", "").partition("charset=")[2].split(";")[0].strip()
        return self.content.decode(charset or "utf-8", errors="replace")


def _text(value) -> str:
    """A query or form value as httpx writes it."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    return "" if value is None else str(value)


_PLAIN = re.compile(r"[A-Za-z0-9_.~-]*").fullmatch  # what quote_plus leaves as it is


def _quoted(text: str) -> str:
    return text if text.isascii() and (text.isalnum() or _PLAIN(text)) else quote_plus(text)


def encoded(fields) -> str:
    """``fields`` (a dict, list values repeated, or (name, value) pairs) urlencoded as httpx encodes them
    (``urlencode``'s output; an order's fields are plain words and numbers, passed through as they are:
    urlencode's quoting of each cost ~45 µs of CPU an order against ~5 µs, issue #18)."""
    pairs = fields.items() if isinstance(fields, dict) else fields
    return "&".join([f"{_quoted(str(k))}={_quoted(_text(x))}"
                     for k, v in pairs for x in (v if isinstance(v, (list, tuple)) else (v,))])


class LeanRequests:
    """Requests to ``root`` over ``transport`` with the client's fixed ``headers`` and one ``timeout``."""

    def __init__(self, root: str, transport: LeanTransport, headers: dict[str, str], timeout: float) -> None:
        parts = urlsplit(root)
        default = 443 if parts.scheme == "https" else 80
        self.transport = transport
        self.key = (parts.scheme, parts.hostname or "", parts.port or default)
        self.prefix = parts.path.rstrip("/")
        host = parts.netloc.rpartition("@")[2]
        fixed = {"Host": host, "Accept": "*/*", "Accept-Encoding": "gzip", "Connection": "keep-alive", **headers}
        self.fixed = "".join(f"{k}: {v}\r\n" for k, v in fixed.items())
        self.timeout = {"connect": timeout, "read": timeout, "write": timeout, "pool": timeout}

    async def send(self, method: str, path: str, params=None, data=None, headers: dict[str, str] | None = None
                   ) -> Answer:
        target = quote(self.prefix + path, safe="/:@!$&'()*+,;=-._~%")
        if params:
            target = f"{target}?{encoded(params)}"
        body = encoded(data).encode() if data else b""
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items()) if headers else ""
        if body:
            extra += f"Content-Length: {len(body)}\r\nContent-Type: application/x-www-form-urlencoded\r\n"
        elif method in BODY_METHODS:
            extra += "Content-Length: 0\r\n"
        head = f"{method} {target} HTTP/1.1\r\n{self.fixed}{extra}\r\n".encode("latin-1")
        status, raw, content = await self.transport.exchange(self.key, method, head, body, self.timeout)
        fields = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in raw}
        coding = fields.get("content-encoding", "").lower()
        try:
            if coding == "gzip":
                content = zlib.decompress(content, 16 + zlib.MAX_WBITS)
            elif coding == "deflate":
                content = zlib.decompress(content)
        except zlib.error as e:
            raise httpx.DecodingError(f"the answer's {coding} body does not decode: {e}") from e
        return Answer(status, fields, content)
