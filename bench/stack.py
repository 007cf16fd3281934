"""What the benches run on, started the way ``kta up`` starts it: nats-server with kta's NATS
authentication (an installation credentials directory from ``shared/natsauth.py``; every process
connects as its own identity, the bench itself as ``admin``), kite_sim, and the workers as their own
processes (``kta worker <service>``) with the environment ``kta up`` gives them."""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from shared import natsd
from shared.bus import Bus
from shared.config import Settings, load, to_env
from shared.natsauth import AuthDir
from kta.supervisor import python_argv

ROOT = Path(__file__).resolve().parent.parent
API_KEY, API_SECRET = "kta-demo", "kta-demo-secret"
SIM_SCRIPT = """
import sys, uvicorn
from kite_sim.app import build_app
from kite_sim.main import make_sim
sim = make_sim(7, 60.0, True, "http://127.0.0.1:9/cb", rate_limits=False)
uvicorn.run(build_app(sim), host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", ws="websockets-sansio",
            loop="asyncio", http="h11")  # the broker stays as it was whatever loop kta runs (uvicorn's "auto" takes uvloop)
"""


class Stack:
    """A temporary directory, nats-server with authentication in it, and the processes started on it."""

    def __init__(self, prefix: str = "kta-bench-") -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix=prefix))
        self.auth = AuthDir.ensure(self.tmp / "nats-auth")
        port = natsd.free_port()
        self.nats_url = f"nats://127.0.0.1:{port}"
        self.monitor = f"http://127.0.0.1:{natsd.free_port()}"  # nats-server's monitoring (messages per connection)
        self.procs: list[subprocess.Popen] = [natsd.start(port, self.tmp / "nats", auth=self.auth,
                                                          http_port=int(self.monitor.rsplit(":", 1)[1]))]
        self.sim_root = ""

    def nats_messages(self) -> dict[str, tuple[int, int]]:
        """Messages each open NATS connection has sent and received so far, by its name (a worker's service)."""
        conns = httpx.get(f"{self.monitor}/connz", params={"limit": 4096}, timeout=10).json()["connections"] or []
        out: dict[str, tuple[int, int]] = {}
        for c in conns:
            sent, got = out.get(c.get("name", ""), (0, 0))
            out[c.get("name", "")] = (sent + c["in_msgs"], got + c["out_msgs"])  # the server's in = the client's sent
        return out

    def settings(self, **overrides) -> Settings:
        """Settings of this stack (every process authenticates from the credentials directory)."""
        kw = dict(nats_url=self.nats_url, data_dir=str(self.tmp / "var"), log_level="WARNING",
                  nats_creds=str(self.auth.path))
        if self.sim_root:
            kw.update(kite_root=self.sim_root, kite_ws_root=self.sim_root.replace("http", "ws", 1) + "/ws",
                      kite_login_url=f"{self.sim_root}/connect/login")
        if "KTA_EVENT_LOOP" in os.environ:  # the one setting a bench takes from its caller: A/B of the loop
            kw["event_loop"] = os.environ["KTA_EVENT_LOOP"]
        return load(environ={}, **{**kw, **overrides})

    async def bus(self, name: str = "bench", identity: str = "admin") -> Bus:
        return await Bus.connect(self.nats_url, name, creds=str(self.auth.creds_path(identity)))

    def start_sim(self) -> str:
        """kite_sim (its own rate limiter off: only kta's limits are measured) in its own process."""
        port = natsd.free_port()
        proc = subprocess.Popen([sys.executable, "-c", SIM_SCRIPT, str(port)], cwd=ROOT, env=self.env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(proc)
        natsd.wait_port("127.0.0.1", port, timeout=60, proc=proc)
        self.sim_root = f"http://127.0.0.1:{port}"
        return self.sim_root

    def use_sim(self, port: int) -> None:
        """A kite_sim the bench started itself (e.g. with a frame driver inside)."""
        self.sim_root = f"http://127.0.0.1:{port}"

    def env(self, settings: Settings | None = None) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("KTA_")}
        return {**base, **(to_env(settings) if settings is not None else {}), "PYTHONPATH": str(ROOT)}

    def worker(self, service: str, settings: Settings, quiet: bool = True) -> subprocess.Popen:
        """``kta worker <service>`` as kta up runs it."""
        out = subprocess.DEVNULL if quiet else None
        proc = subprocess.Popen(python_argv("worker", service), cwd=ROOT, env=self.env(settings), stdout=out,
                                stderr=out)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen) -> None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        if proc in self.procs:
            self.procs.remove(proc)

    def close(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc)
        shutil.rmtree(self.tmp, ignore_errors=True)


def login(root: str, user_id: str = "DEMO01", password: str = "demo", api_key: str = API_KEY,
          api_secret: str = API_SECRET) -> str:
    """A sim user's Kite access token through Kite's login flow (form post, checksummed exchange)."""
    r = httpx.post(f"{root}/connect/login", data={"api_key": api_key, "user_id": user_id, "password": password})
    request_token = re.search(r"request_token=([^&]+)", r.headers["location"]).group(1)
    checksum = hashlib.sha256(f"{api_key}{request_token}{api_secret}".encode()).hexdigest()
    r = httpx.post(f"{root}/session/token", data={"api_key": api_key, "request_token": request_token,
                                                  "checksum": checksum}, headers={"X-Kite-Version": "3"})
    return r.json()["data"]["access_token"]


def percentile(sorted_values: list[float], q: float) -> float:
    """The q-quantile (nearest rank) of already sorted values."""
    if not sorted_values:
        return float("nan")
    return sorted_values[min(len(sorted_values) - 1, max(0, int(round(q * len(sorted_values))) - 1))]


def machine_load() -> str:
    """The machine's load when a figure was taken (the dev machine is shared: say how busy it was)."""
    one, five, fifteen = os.getloadavg()
    return f"load average {one:.2f} / {five:.2f} / {fifteen:.2f} (1/5/15 min, uptime) on {os.cpu_count()} cores"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a process has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def until(check, what, timeout: float = 90.0) -> None:
    """Wait for ``check()`` (a value or a coroutine) to be true; a bench that cannot go on exits naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what() if callable(what) else what}")
        await asyncio.sleep(0.1)
