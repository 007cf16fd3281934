"""The system test's own reads of the broker, for its one trader: they share the api key's rate budget with kta,
so each waits out a 429 instead of failing the run."""

from __future__ import annotations

from shared.kite import errors
from tests.helpers import eventually

USER = "DEMO01"


async def call(fn, *args, **kw):
    """A broker read from the test, waiting out 429s (it shares the api key's budget with kta)."""
    async def attempt():
        try:
            return (await fn(*args, **kw),)
        except errors.TooManyRequests:
            return None
    return (await eventually(attempt, timeout=30, what=f"{fn.__name__} within the rate limit"))[0]
