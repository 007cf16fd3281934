"""``KTA_EVENT_LOOP``: the event loop every kta process runs (the workers' and kite_sim's through
``shared.stopping``, the gateway's through uvicorn), and the HTTP parser uvicorn serves the gateway with.

``uvloop`` (libuv, and httptools' C parser for the gateway's HTTP) is the optional extra ``kta[fast]``; asked for
without it installed, the process stops at start-up naming the setting."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

SETTING = "KTA_EVENT_LOOP"


class Missing(SystemExit):
    pass


def _need(package: str, choice: str) -> None:
    try:
        __import__(package)
    except ImportError:
        raise Missing(f"{SETTING}={choice}: the {package} package is not installed "
                      f"(pip install 'kta[fast]', or unset {SETTING})") from None


def loop_factory(choice: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """What ``asyncio.Runner(loop_factory=...)`` is given: None = asyncio's own loop."""
    if choice == "asyncio":
        return None
    if choice == "uvloop":
        _need("uvloop", choice)
        import uvloop
        return uvloop.new_event_loop
    raise Missing(f"{SETTING}: expected 'asyncio' or 'uvloop', got {choice!r}")


def uvicorn_options(choice: str) -> dict[str, str]:
    """uvicorn's ``loop`` and ``http`` for ``choice`` (its "auto" would pick uvloop whenever installed)."""
    if choice == "uvloop":
        _need("uvloop", choice)
        _need("httptools", choice)
        return {"loop": "uvloop", "http": "httptools"}
    loop_factory(choice)
    return {"loop": "asyncio", "http": "h11"}


def running() -> str:
    """The running loop's family, as a health reply reports it: 'asyncio' or 'uvloop'."""
    return type(asyncio.get_running_loop()).__module__.split(".")[0]
