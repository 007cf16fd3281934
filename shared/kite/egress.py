"""Where a user's orders leave this machine from. Since April 2026 Kite takes order calls (place,
modify, cancel) only from the static IP registered for the app; the egress is either a forward proxy
that owns that IP or a source address of this machine that is that IP (or routes to it).

``problem()`` says why an egress cannot be used right now (None when it can): a source address this
machine does not have, a proxy that does not answer. Orders for such a user are refused with that
reason; nothing falls back to another address, where Kite would reject them anyway."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

PROXY_SCHEMES = ("http", "https")  # what httpx speaks without extras (a CONNECT tunnel to api.kite.trade)


class EgressError(ValueError):
    """A setting that can never work (bad syntax), named by its field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Egress:
    proxy: str = ""
    local_address: str = ""

    def __post_init__(self) -> None:
        if self.proxy and self.local_address:  # httpx would silently drop the source address behind a proxy
            raise EgressError("proxy", "egress is either a proxy URL or a local source address, not both")
        if self.local_address:
            try:
                ipaddress.ip_address(self.local_address)
            except ValueError:
                raise EgressError("local_address", f"{self.local_address!r} is not an IP address") from None
        if self.proxy:
            parts = urlsplit(self.proxy)
            if parts.scheme not in PROXY_SCHEMES or not parts.hostname:
                raise EgressError("proxy", "the proxy must be a URL like http://host:3128 (http or https)")
            try:
                parts.port  # noqa: B018 - raises on a bad port
            except ValueError:
                raise EgressError("proxy", "the proxy URL has a bad port") from None

    @property
    def configured(self) -> bool:
        return bool(self.proxy or self.local_address)

    def describe(self) -> str:
        """For people and logs: never the proxy's credentials."""
        if self.local_address:
            return f"source address {self.local_address}"
        if self.proxy:
            parts = urlsplit(self.proxy)
            return f"proxy {parts.scheme}://{parts.hostname}:{self._proxy_port()}"
        return "this machine's default route (no static-IP egress set)"

    def _proxy_port(self) -> int:
        parts = urlsplit(self.proxy)
        return parts.port or (443 if parts.scheme == "https" else 80)

    async def problem(self, timeout: float = 3.0) -> str | None:
        """Why orders cannot leave through this egress now, or None."""
        if self.local_address:
            family = socket.AF_INET6 if ":" in self.local_address else socket.AF_INET
            with socket.socket(family, socket.SOCK_STREAM) as s:
                try:
                    s.bind((self.local_address, 0))
                except OSError as e:
                    return f"{self.local_address} is not an address of this machine ({e.strerror})"
            return None
        if self.proxy:
            host, port = urlsplit(self.proxy).hostname, self._proxy_port()
            try:
                _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
            except (OSError, asyncio.TimeoutError) as e:
                reason = "no answer" if isinstance(e, asyncio.TimeoutError) else (e.strerror or repr(e))
                return f"the egress {self.describe()} does not answer ({reason})"
            writer.close()
            return None
        return None
