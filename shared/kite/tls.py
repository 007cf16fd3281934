"""One TLS context per process for kta's HTTP clients. httpx builds a new one for every client it is
not given one (the CA bundle read and parsed again: ~50 ms of CPU each), and kta opens a client per
user session, per egress change and per ``kta doctor`` probe; the tests, one per request."""

from __future__ import annotations

import functools
import ssl

import httpx


@functools.cache
def context() -> ssl.SSLContext:
    """httpx's own default (certifi's CA bundle, certificates and host names verified), built once.
    An ``SSLContext`` is safe to share between clients, threads and event loops."""
    return httpx.create_ssl_context(trust_env=False)
