"""Helpers of the kite_sim tests: a sim process of their own (so other suites' orders and Kite's
rate limits do not leak in), the official client logged in through the real flow, and pacing that
waits out Kite's per-second request limits with a deadline."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kiteconnect import KiteConnect
from kiteconnect.exceptions import NetworkException

from tests.simkit import Sim, request_token


def paced(fn: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Call ``fn``; while the sim answers 429 (Kite allows 1 quote / 3 historical / 10 other requests a
    second), wait a little and retry until ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        try:
            return fn()
        except NetworkException as e:
            if "Too many requests" not in str(e) or time.monotonic() > deadline:
                raise
            pause.wait(0.2)


def wait_for(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        pause.wait(0.1)


def client(sim: Sim) -> KiteConnect:
    kite = KiteConnect(sim.api_key, root=sim.root)
    session = kite.generate_session(request_token(sim), api_secret=sim.api_secret)
    kite.set_access_token(session["access_token"])
    return kite


def sim_log(tmp: Path) -> str:
    return (tmp / "sim.log").read_text(errors="replace")
