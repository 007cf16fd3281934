"""Start a real kite_sim process for a test and log in to it the way a browser would."""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx

from shared import natsd
from shared.ist import IST
from shared.kite import tls
from tests import simfork

ROOT = Path(__file__).resolve().parent.parent
API_KEY, API_SECRET = "kta-demo", "kta-demo-secret"
USER_ID, PASSWORD = "DEMO01", "demo"


@dataclass
class Sim:
    proc: simfork.Forked  # answers as subprocess.Popen does
    port: int
    api_key: str = API_KEY
    api_secret: str = API_SECRET
    user_id: str = USER_ID
    password: str = PASSWORD
    scheme: str = "http"  # https: started with a certificate (start_sim's ``tls``)
    log: Path | None = None

    @property
    def root(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def ws_root(self) -> str:
        return f"{'wss' if self.scheme == 'https' else 'ws'}://127.0.0.1:{self.port}/ws"

    @property
    def login_url(self) -> str:
        return f"{self.root}/connect/login"

    def get(self, path: str, **kw) -> httpx.Response:
        """One request to the sim (``path`` from its root), as a client that just connected would make it."""
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> httpx.Response:
        return self.request("POST", path, **kw)

    def request(self, method: str, path: str, **kw) -> httpx.Response:
        try:
            # the process's one TLS context: httpx would parse the CA bundle again for each call (~50 ms of CPU)
            return httpx.request(method, f"{self.root}{path}", verify=tls.context(), **kw)
        except httpx.TransportError:
            self.check_running()
            raise

    def admin(self, path: str, json: dict | None = None) -> dict:
        r = self.post(f"/sim/{path}", json=json or {}, timeout=10)
        if r.is_error:
            self.check_running()
        r.raise_for_status()
        return r.json()

    def check_running(self) -> None:
        """Raise :class:`SimGone` if the sim's process has exited (a module's or the session's sim is used
        long after its start: the test that finds it dead says so, with how it ended and what it logged)."""
        code = self.proc.poll()
        if code is not None:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log and self.log.exists() else "(no log)"
            raise SimGone(f"the kite_sim on port {self.port} (pid {self.proc.pid}) exited with {code}; "
                          f"its log {self.log} ends:\n{tail}")

    def market_time(self) -> datetime:
        """The sim's market clock now (IST, naive)."""
        return datetime.strptime(self.get("/sim/clock").json()["now"], "%Y-%m-%d %H:%M:%S")

    def trading_day(self) -> str:
        return self.get("/sim/clock").json()["trading_day"]

    def advance_to(self, hh: int, mm: int, ss: int = 0) -> bool:
        """The market clock ahead to hh:mm:ss of the sim's trading day; False (not moved) when it is past that."""
        now = self.market_time()
        ahead = (hh * 3600 + mm * 60 + ss) - (now.hour * 3600 + now.minute * 60 + now.second)
        if ahead > 0:
            self.admin("advance", {"seconds": ahead})
        return ahead > 0

    def faults(self, **changes) -> dict:
        return self.admin("faults", changes)

    def reset_faults(self) -> dict:
        """Every fault off (the counters stay: tests read what was injected)."""
        return self.faults(latency_ms=0, rate_limit_next=0, reject_next=0, partial_then_cancel_next=0,
                           hold_fills=False, drop_ws_every=0.0, malformed_next=0, poison_tokens=[],
                           lose_answer_next=0, lose_answer_effect=True, reject_gtt_next=0)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class SimGone(RuntimeError):
    """A test's kite_sim is no longer running."""


# A NIFTY weekly expiry (Tuesday): tests that need an expiry day, or the day after one, start their sim on it
# (``extra=PINNED``) and pass whatever the date they run on — on 2026-12-02 the nearest expiry is 6 days out.
EXPIRY_DAY = "2026-12-01"
PINNED = ("--date", EXPIRY_DAY)


def far_token_expiry() -> tuple[str, str]:
    """kite_sim's flag setting its tokens' death 12 hours from now: a session of a test never straddles it (the
    real 06:00 IST cutoff fell inside a run at 00:28 UTC and 403'd eight tests' clients mid-test)."""
    return "--token-expiry-hour", str((datetime.now(IST).hour + 12) % 24)


def launch(flags: list[str], log: Path | None, *, append: bool = False) -> simfork.Forked:
    """``python -m kite_sim <flags>`` in the checkout, without the developer's KTA_ settings, its output to
    ``log`` (or nowhere): forked from this process's preloaded sim server (tests/simfork.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTA_") and k != simfork.ADDRESS_VARIABLE}
    with open(log or os.devnull, "ab" if append or log is None else "wb") as out:
        return simfork.spawn(flags, cwd=ROOT, env=env, log=out.fileno())


def start_sim(tmp_path: Path | None = None, *, seed: int = 7, speed: float = 60.0, admin: bool = True,
              redirect_url: str = "http://127.0.0.1:8000/auth/kite/callback", extra: tuple[str, ...] = (),
              port: int = 0, tls: tuple[Path, Path] | None = None) -> Sim:
    """``extra``: more kite_sim flags (``("--replay", "candles.csv")``); ``port``: a port chosen beforehand;
    ``tls``: (certificate chain, key) PEM files: the sim serves https, as the real Kite does."""
    port = port or natsd.free_port()
    flags = ["--host", "127.0.0.1", "--port", str(port), "--seed", str(seed), "--speed", str(speed),
             "--redirect-url", redirect_url, *far_token_expiry(), *extra]
    if admin:
        flags.append("--admin")
    if tls:
        flags += ["--tls-cert", str(tls[0]), "--tls-key", str(tls[1])]
    log = tmp_path / "sim.log" if tmp_path else None
    proc = launch(flags, log)
    try:  # until this sim listens: another process on the port (it failed to bind) is not it
        natsd.wait_port("127.0.0.1", port, timeout=20, proc=proc)
    except BaseException:  # a sim too slow to listen must not outlive the test that gave up on it
        proc.kill()
        proc.wait()
        raise
    return Sim(proc, port, scheme="https" if tls else "http", log=log)


def request_token(sim: Sim, user_id: str = USER_ID, password: str = PASSWORD) -> str:
    """The login form, submitted like a browser: the redirect carries the request token."""
    r = sim.post("/connect/login", data={"api_key": sim.api_key, "user_id": user_id, "password": password})
    assert r.status_code == 302, r.text
    return re.search(r"request_token=([^&]+)", r.headers["location"]).group(1)


def login(sim: Sim, user_id: str = USER_ID, password: str = PASSWORD) -> str:
    """The whole Kite login flow with the real checksum; returns the access token."""
    rt = request_token(sim, user_id, password)
    checksum = hashlib.sha256(f"{sim.api_key}{rt}{sim.api_secret}".encode()).hexdigest()
    r = sim.post("/session/token", data={"api_key": sim.api_key, "request_token": rt,
                                                      "checksum": checksum}, headers={"X-Kite-Version": "3"})
    r.raise_for_status()
    return r.json()["data"]["access_token"]


async def a_morning(sim: Sim, by_hour: int = 10) -> None:
    """At or past ``by_hour`` on its clock the sim moves on to the next session's open (settling the day, when it
    settles): a test that chooses when the day closes starts in a morning."""
    from tests.helpers import eventually

    if sim.market_time().hour >= by_hour:
        day = sim.trading_day()
        sim.advance_to(15, 29, 59)
        await eventually(lambda: sim.trading_day() != day, what="the sim's next session")
