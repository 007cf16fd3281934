"""tests/simfork.py: a sim forked from the preloaded server is the process ``python -m kite_sim`` would be —
it listens, logs to the caller's file, runs with the caller's environment and working directory, stops
gracefully on SIGTERM and dies on SIGKILL, with the exit status Popen would report; a server that is stopped
stops what it still runs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess

import pytest

from shared import natsd
from tests import simfork
from tests.simkit import ROOT, SimGone, launch, start_sim


def _listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def test_a_forked_sim_serves_logs_to_the_callers_file_and_stops_gracefully(tmp_path):
    sim = start_sim(tmp_path)
    assert sim.proc.pid != os.getpid() and sim.proc.poll() is None
    assert sim.get("/sim/clock").status_code == 200
    sim.stop()
    assert sim.proc.returncode == 0  # SIGTERM: run_until_signalled's graceful stop, os._exit(0)
    assert not _listening(sim.port)
    assert f"kite_sim listening on http://127.0.0.1:{sim.port}" in (tmp_path / "sim.log").read_text()


def test_sigkill_kills_the_sim_and_reports_the_signal_as_popen_does(tmp_path):
    sim = start_sim(tmp_path)
    sim.proc.kill()
    assert sim.proc.wait(10) == -signal.SIGKILL
    assert sim.proc.poll() == -signal.SIGKILL
    assert not _listening(sim.port)
    sim.proc.kill()  # a dead sim is not signalled again (its pid may be another process's by now)


def test_a_sim_that_cannot_start_fails_start_sim_with_its_status_and_its_message_in_the_log(tmp_path):
    with pytest.raises(RuntimeError, match="process exited with 2 before listening"):
        start_sim(tmp_path, extra=("--token-expiry-hour", "99"))
    assert "--token-expiry-hour: invalid choice: 99" in (tmp_path / "sim.log").read_text()


def test_a_sim_that_cannot_bind_fails_its_start_though_another_process_listens_on_its_port(tmp_path):
    """wait_port's connection alone would be answered by the other listener, and the test would go on to talk
    to it (CI: a 404 for /sim/accounts/reset, then "connection refused" once that one stopped)."""
    port = natsd.free_port()
    with socket.create_server(("127.0.0.1", port)):
        with pytest.raises(RuntimeError, match=r"exited with 3 before listening .*another process listens"):
            start_sim(tmp_path, port=port)
    assert "address already in use" in (tmp_path / "sim.log").read_text()


def test_a_signal_reaches_the_sim_never_the_process_that_has_its_pid_now(tmp_path):
    """The server signals its unreaped child; ``os.kill(pid)`` from here could reach whatever process the
    number belongs to once the server has reaped the sim (here: as if it had been reused already)."""
    stranger = subprocess.Popen(["sleep", "60"])
    sim = start_sim(tmp_path)
    try:
        sim.proc.pid = stranger.pid
        sim.proc.kill()
        assert sim.proc.wait(10) == -signal.SIGKILL
        assert stranger.poll() is None
    finally:
        sim.stop()
        stranger.kill()
        stranger.wait()


def test_a_dead_sims_next_use_says_that_it_exited_and_what_it_logged(tmp_path):
    sim = start_sim(tmp_path)
    sim.proc.kill()
    sim.proc.wait(10)
    with pytest.raises(SimGone, match=rf"(?s)port {sim.port} .* exited with -9; .*kite_sim listening on"):
        sim.admin("reset")
    with pytest.raises(SimGone):
        sim.check_running()


def test_the_child_runs_with_the_callers_environment_and_working_directory(tmp_path):
    """KTA_LOG_FORMAT=text (the server itself runs without any KTA_ setting) and a --faults file named relative
    to the caller's working directory."""
    (tmp_path / "start.json").write_text(json.dumps({"latency_ms": 7}))
    port = natsd.free_port()
    env = {**os.environ, "KTA_LOG_FORMAT": "text"}
    with open(tmp_path / "sim.log", "wb") as log:
        proc = simfork.spawn(["--host", "127.0.0.1", "--port", str(port), "--admin", "--faults", "start.json"],
                             cwd=tmp_path, env=env, log=log.fileno())
    try:
        natsd.wait_port("127.0.0.1", port, timeout=20, proc=proc)
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    text = (tmp_path / "sim.log").read_text()
    assert "faults from start.json" in text and "'latency_ms': 7" in text
    assert " INFO    sim kite_sim: kite_sim listening" in text  # the text format, not JSON
    assert not text.lstrip().startswith("{")


def test_a_stopped_server_stops_the_sims_it_still_runs(tmp_path):
    server = simfork._Server()  # a server of this test's own: the session's keeps serving the other tests
    port = natsd.free_port()
    with open(tmp_path / "sim.log", "wb") as log:
        proc = server.spawn(["--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=dict(os.environ),
                            log=log.fileno())
    natsd.wait_port("127.0.0.1", port, timeout=20, proc=proc)
    server.stop()
    assert proc.wait(0) == 0 and not _listening(port)


def test_a_restarted_sim_appends_to_the_same_log(tmp_path):
    port = natsd.free_port()
    for _ in range(2):
        proc = launch(["--host", "127.0.0.1", "--port", str(port)], tmp_path / "sim.log", append=True)
        natsd.wait_port("127.0.0.1", port, timeout=20, proc=proc)
        proc.terminate()
        assert proc.wait(10) == 0
    assert (tmp_path / "sim.log").read_text().count("kite_sim listening on") == 2


def _parent_of(pid: int) -> int:
    return int((open(f"/proc/{pid}/stat").read().rpartition(")")[2]).split()[1])


def test_an_xdist_workers_sims_come_from_the_controllers_server(tmp_path):
    """Under xdist one server serves every worker (its imports paid once a run); alone, the test process's."""
    sim = start_sim(tmp_path)
    try:
        owner = os.getppid() if os.environ.get("PYTEST_XDIST_WORKER") else os.getpid()
        assert _parent_of(_parent_of(sim.proc.pid)) == owner
    finally:
        sim.stop()


def test_a_lent_server_forks_for_its_borrower_and_is_stopped_only_by_its_owner(tmp_path):
    owner = simfork._Server()
    lent = simfork._Server(owner.address)
    port = natsd.free_port()
    try:
        with open(tmp_path / "sim.log", "wb") as log:
            proc = lent.spawn(["--host", "127.0.0.1", "--port", str(port)], cwd=ROOT, env=dict(os.environ),
                              log=log.fileno())
        natsd.wait_port("127.0.0.1", port, timeout=20, proc=proc)
        assert _parent_of(proc.pid) == owner.proc.pid
        lent.stop()
        assert proc.poll() is None and _listening(port)
    finally:
        owner.stop()
    assert proc.wait(0) == 0 and not _listening(port)


def test_a_kta_command_runs_forked_and_answers_as_subprocess_run_would(tmp_path):
    """``simfork.run("kta", ...)``: kta.cli's exit status, stdout and stderr apart, the caller's environment and
    working directory — what ``subprocess.run([python, "-m", "kta", ...], capture_output=True)`` returns."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("KTA_")}
    wrong = simfork.run("kta", ["users", "nosuch"], cwd=tmp_path, env=env, timeout=60)
    assert wrong.returncode == 2 and wrong.stdout == "" and "invalid choice: 'nosuch'" in wrong.stderr
    added = simfork.run("kta", ["users", "add", "AB1234", "--email", "ab@example.com", "--api-key", "k",
                                "--api-secret", "s", "--data-dir", "d"], cwd=tmp_path, env=env, timeout=60)
    assert added.returncode == 0, added.stderr
    listed = simfork.run("kta", ["users", "list", "--data-dir", "d"], cwd=tmp_path, env=env, timeout=60)
    assert "AB1234" in listed.stdout and (tmp_path / "d").is_dir()
