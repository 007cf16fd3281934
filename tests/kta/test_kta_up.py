"""``kta up`` as a trader runs it: a subprocess that starts nats-server, kite_sim, the three workers
(the execution worker twice: ``kta up``'s default ``KTA_EXECUTION_WORKERS``) and the gateway, serves the login page,
restarts a child that dies, and on Ctrl-C stops everything within its grace period — every child draining
by itself, none SIGKILLed — leaving no process behind."""

from __future__ import annotations

import asyncio
import os
import queue
import re
import signal
import threading
import time
from pathlib import Path

import httpx
import nats
import pytest

from shared import messages as m
from shared import natsd, subjects
from shared.bus import auth_options
from shared.kite import tls
from tests import simfork
from tests.helpers import eventually_blocking

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow(seconds=55)


def descendants(pid: int) -> dict[int, str]:
    """Every live process below ``pid`` with its command line (from /proc)."""
    parents: dict[int, int] = {}
    cmdlines: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if state == "Z":
                continue
            parents[int(entry.name)] = int(ppid)
            cmdlines[int(entry.name)] = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, IndexError, ValueError):
            continue
    found: dict[int, str] = {}
    frontier = [pid]
    while frontier:
        p = frontier.pop()
        for child, parent in parents.items():
            if parent == p and child not in found:
                found[child] = cmdlines.get(child, "")
                frontier.append(child)
    return found


async def ask_health(nats_url: str, creds: str, service: str) -> m.Ok:
    """A worker's answer on its health subject, asked as kta's ops identity."""
    nc = await nats.connect(nats_url, **auth_options(creds, "ops"))
    try:
        return m.reply_decoder.decode((await nc.request(subjects.service_health(service), b"", timeout=10)).data)
    finally:
        await nc.close()


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_kta_up_serves_restarts_a_dead_child_and_stops_clean(tmp_path):
    port = natsd.free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTA_")}
    proc = simfork.popen("kta", ["--data-dir", str(tmp_path / "var"), "up", "--port", str(port),
                                 "--sim-speed", "30", "--sim-seed", "3"], cwd=ROOT, env=env)
    lines: queue.Queue[str] = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True)
    reader.start()
    output: list[str] = []
    seen: dict[int, str] = {}

    def read_until(pattern: str, timeout: float) -> re.Match:
        deadline = time.monotonic() + timeout
        while True:
            assert proc.poll() is None, "kta up exited early:\n" + "".join(output)
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"kta up never printed {pattern!r}:\n" + "".join(output)) from None
            output.append(line)
            if match := re.search(pattern, line):
                return match

    try:
        url = read_until(r"kta is up: (http://\S+)", 120).group(1)
        assert url == f"http://127.0.0.1:{port}"
        read_until(r"DEMO01", 5)  # how to log in is printed with the URL
        nats_url = read_until(r"NATS: (nats://\S+)", 5).group(1)

        r = httpx.get(f"{url}/api/status", timeout=10, verify=tls.context())
        assert r.status_code == 401  # no session, no data
        with httpx.Client(base_url=url, timeout=10, verify=tls.context()) as browser:  # the demo login, as printed
            assert "Zerodha ID" in browser.get("/login").text
            sent = browser.post("/auth/send-otp", data={"zerodha_id": "DEMO01", "email": "demo@kta.local"})
            code = re.search(r'id="dev-otp">(\d{6})<', sent.text).group(1)
            browser.post("/auth/verify-otp", data={"zerodha_id": "DEMO01", "otp": code})
            status = browser.get("/api/status")
            assert status.status_code == 200, status.text
            assert status.json()["broker"]["state"] == "absent"  # next step: Connect Kite

        seen = descendants(proc.pid)
        names = " ".join(seen.values())
        for part in ("nats-server", "sim", "worker ticker", "worker strategy", "worker execution", "gateway"):
            assert part in names, f"{part} is not running: {seen}"
        # kta up's default: two execution workers, the users' partitions shared between them
        assert sum("worker execution" in cmd for cmd in seen.values()) == 2, seen
        logs = tmp_path / "var" / "logs"
        eventually_blocking(lambda: all((log := logs / f"{name}.log").exists()
                                        and "acquired partition" in log.read_text()
                                        for name in ("execution", "execution-2")), 30, "both to hold partitions")
        # a worker in its own process froze its start-up heap: full collections no longer walk it (issue #18)
        health = asyncio.run(ask_health(nats_url, str(tmp_path / "var" / "nats-auth"), "execution"))
        assert health.data["heap_frozen"] > 10_000, health

        # a child that dies is restarted by the supervisor
        strategy = next(pid for pid, cmd in seen.items() if "worker strategy" in cmd)
        os.kill(strategy, signal.SIGKILL)
        eventually_blocking(lambda: any("worker strategy" in cmd and pid != strategy
                                        for pid, cmd in descendants(proc.pid).items()),
                            30, "the strategy worker to restart")
        seen.update(descendants(proc.pid))

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=15) == 0
        reader.join(10)  # the supervisor's last lines: how each child stopped
        output += list(lines.queue)
        killed = [line for line in output if "did not stop in time" in line]
        assert not killed, "a child had to be SIGKILLed at Ctrl-C:\n" + "".join(killed)
        assert "all children stopped" in "".join(output)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(10)  # at the pipe's end: kta up has exited, and none of its children holds the pipe
        proc.stdout.close()
    left = [f"{pid} {cmd}" for pid, cmd in seen.items() if alive(pid)]
    assert not left, f"orphans after kta up stopped: {left}"
