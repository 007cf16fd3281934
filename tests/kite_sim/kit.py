"""Helpers of the kite_sim tests: a sim process of their own (so other suites' orders and Kite's
rate limits do not leak in), the official client logged in through the real flow, and pacing that
waits out Kite's per-second request limits with a deadline."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kiteconnect import KiteConnect
from kiteconnect.exceptions import NetworkException

from tests.helpers import eventually_blocking
from tests.simkit import Sim, request_token, start_sim


def paced(fn: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Call ``fn``; while the sim answers 429 (Kite allows 1 quote / 3 historical / 10 other requests a
    second), call it again until ``timeout``."""
    def attempt() -> tuple | None:
        try:
            return (fn(),)
        except NetworkException as e:
            if "Too many requests" not in str(e):
                raise
            return None

    return eventually_blocking(attempt, timeout, "an answer within Kite's rate limits", poll=0.2)[0]


def client(sim: Sim) -> KiteConnect:
    kite = KiteConnect(sim.api_key, root=sim.root)
    session = kite.generate_session(request_token(sim), api_secret=sim.api_secret)
    kite.set_access_token(session["access_token"])
    return kite


def sim_log(tmp: Path) -> str:
    return (tmp / "sim.log").read_text(errors="replace")


def start_sim_with(tmp: Path, *extra: str, seed: int = 9, speed: float = 60.0, port: int | None = None,
                   log_name: str = "sim.log") -> Sim:
    """Like ``tests.simkit.start_sim``, with extra ``kta sim`` flags (--snapshot, --replay, --settle ...); the
    sim's output is appended to ``tmp/log_name`` (a restarted sim's after the first one's)."""
    from shared import natsd
    from tests.simkit import far_token_expiry, launch

    port = port or natsd.free_port()
    flags = ["--host", "127.0.0.1", "--port", str(port), "--seed", str(seed), "--speed", str(speed), "--admin",
             *far_token_expiry(), *extra]
    proc = launch(flags, tmp / log_name, append=True)
    natsd.wait_port("127.0.0.1", port, timeout=20, proc=proc)
    return Sim(proc, port, log=tmp / log_name)


def module_sim(name: str, seed: int, extra: tuple[str, ...] = ()):
    """Fixtures for a test module's own sim: ``sim_dir`` (whose sim.log tests read) and ``sim``.
    Use as ``sim_dir, sim = module_sim("faults", seed=5)``."""

    @pytest.fixture(scope="module")
    def sim_dir(tmp_path_factory):
        return tmp_path_factory.mktemp(name)

    @pytest.fixture(scope="module")
    def sim(sim_dir):
        s = start_sim(sim_dir, seed=seed, speed=60.0, extra=extra)
        yield s
        s.stop()

    return sim_dir, sim
