"""The ``kta`` command: ``kta up`` runs everything; the other subcommands run one service each
(what containers run) or manage users."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import logging
import os
import sys
from datetime import date
from pathlib import Path

from kite_sim.options import add_options as add_sim_options
from shared import healthcheck, natsauth, natsd
from shared import log as kta_log
from shared.config import ConfigError, Settings, env_name, load, provided, to_env
from shared.natsauth import AuthDir

VERSION = "0.1.0"
# execution workers kta up runs unless KTA_EXECUTION_WORKERS says otherwise: on the 2-core dev machine two took a bar's
# 24 signals p50 63 -> 48 ms, p99 181 -> 130 ms (medians of 4 alternating 240-order runs, load 2.5-4.5) for ~23 % more
# execution CPU an order; a lone `kta worker execution` keeps the setting's default, 1
UP_EXECUTION_WORKERS = 2
log = logging.getLogger("kta.cli")


def _settings(a: argparse.Namespace, **extra) -> Settings:
    try:
        extra.setdefault("data_dir", getattr(a, "data_dir", None))
        return load(getattr(a, "config", None), **extra)
    except ConfigError as e:
        sys.exit(f"kta: bad setting: {e}")


def cmd_sim(a) -> None:
    from kite_sim.main import options_from, run

    run(_settings(a, sim_host=a.host, sim_port=a.port, sim_seed=a.seed, sim_speed=a.speed,
                  sim_admin=a.admin or None), a.redirect_url, options_from(a))


def cmd_worker(a) -> None:
    settings = _settings(a)
    if a.service == "ticker":
        from ticker_worker.main import run
    elif a.service == "strategy":
        from strategy_worker.main import run
    else:
        from execution_worker.main import run
    run(settings)


def cmd_gateway(a) -> None:
    from gateway.main import run

    run(_settings(a, gateway_host=a.host, gateway_port=a.port))


def cmd_users(a) -> None:
    from gateway import users

    settings = _settings(a)
    kta_log.setup("cli", "WARNING", "text")
    if a.action == "add":
        users.add_user(settings, zerodha_id=a.zerodha_id, email=a.email, api_key=a.api_key, api_secret=a.api_secret,
                       name=a.name or "")
        print(f"added {a.zerodha_id.upper()}")
    elif a.action == "remove":
        print("removed" if users.remove_user(settings, a.zerodha_id) else f"no user {a.zerodha_id}")
        with contextlib.suppress(FileNotFoundError):  # their read-only NATS keys go too
            natsauth.reader_creds(settings, a.zerodha_id.upper(), days=0, out="", revoke=True)
    elif a.action == "nats-creds":
        user_id = a.zerodha_id.upper()
        if not any(u["zerodha_id"] == user_id for u in users.list_users(settings)):
            sys.exit(f"kta: no user {user_id}")
        try:
            print(natsauth.reader_creds(settings, user_id, days=a.days, out=a.out, revoke=a.revoke))
        except FileNotFoundError as e:
            sys.exit(f"kta: {e}")
    elif a.action == "egress":
        from gateway.egress_settings import set_from_cli
        from shared.kite.egress import EgressError

        try:
            print("\n".join(asyncio.run(set_from_cli(settings, a.zerodha_id, a.proxy, a.local_address))))
        except (EgressError, users.UserError) as e:
            sys.exit(f"kta: {e.field}: {e}")
    else:
        for u in users.list_users(settings):
            egress = users.egress_of(settings, users.get_user(settings, u["zerodha_id"]))
            print(f"{u['zerodha_id']:<10} {u['email']:<30} api_key={u['api_key']}  orders from: {egress.describe()}")


def cmd_doctor(a) -> None:
    from kta import doctor

    settings = _settings(a)
    kta_log.setup("cli", "ERROR", "text")
    text, code = doctor.report(asyncio.run(doctor.run(settings, with_network=a.network)))
    print(text)
    sys.exit(code)


def cmd_backtest(a) -> None:
    from strategy_worker.backtest.cli import cmd_backtest as run

    sys.exit(run(_settings(a), a))


def cmd_candles(a) -> None:
    from strategy_worker.backtest.cli import cmd_candles as run

    sys.exit(run(_settings(a), a))


def _tcp_ready(host: str, port: int):
    return lambda: healthcheck.tcp_ok(port, host, timeout=0.3)


def _worker_ready(nats_url: str, service: str, creds: str):
    """A worker is healthy when it answers on ``kta.svc.<service>.health`` (asked as ``ops``)."""
    return lambda: healthcheck.service_answers(nats_url, service, timeout=0.5, creds=creds)


EDIS_HELP = ("kite_sim accounts without DDPI (comma-separated user ids, e.g. DEMO01): their delivery sells need the "
             "day's eDIS/TPIN authorisation (HTTP 428 until given), as on a real account without DDPI")
REAL_KITE = ("kite_root", "kite_ws_root", "kite_login_url")  # where the real Kite is; the defaults are kite_sim's


def _refuse_without_real_kite(a: argparse.Namespace) -> None:
    """``--no-sim`` means real money: the Kite endpoints must be given, not left at kite_sim's defaults."""
    given = provided(getattr(a, "config", None))
    missing = [env_name(k) for k in REAL_KITE if k not in given]
    if missing:
        sys.exit(f"kta up --no-sim: set {', '.join(missing)} (environment or --config file) to the real Kite "
                 f"endpoints (https://api.kite.trade, wss://ws.kite.trade, https://kite.zerodha.com/connect/login);"
                 f" docs/real-kite.md walks through the whole setup and `kta doctor` checks it")


def cmd_up(a) -> None:
    from kta.supervisor import Child, Supervisor, python_argv

    if a.no_sim:
        _refuse_without_real_kite(a)
    data_dir = Path(a.data_dir or os.environ.get("KTA_DATA_DIR") or "./var").resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "logs").mkdir(exist_ok=True)
    gw_port = a.port
    sim_port = a.sim_port or natsd.free_port()
    external_nats = os.environ.get("KTA_NATS_URL")
    nats_port = a.nats_port or natsd.free_port()
    nats_url = external_nats or f"nats://127.0.0.1:{nats_port}"
    auth = None if external_nats else AuthDir.ensure(data_dir / "nats-auth")
    overrides = dict(data_dir=str(data_dir), nats_url=nats_url, gateway_host=a.host, gateway_port=gw_port,
                     nats_creds=str(auth.path) if auth else None,
                     sim_port=sim_port, sim_speed=a.sim_speed, sim_seed=a.sim_seed,
                     log_format="json" if a.json_logs else None)
    if not a.no_sim:
        overrides.update(kite_root=f"http://127.0.0.1:{sim_port}", kite_ws_root=f"ws://127.0.0.1:{sim_port}/ws",
                         kite_login_url=f"http://127.0.0.1:{sim_port}/connect/login", sim_admin=a.sim_admin or None)
        if "feed_hours" not in provided(getattr(a, "config", None)):
            overrides["feed_hours"] = "always"  # kta up's kite_sim ticks around the clock
    if "execution_workers" not in provided(getattr(a, "config", None)):
        overrides["execution_workers"] = UP_EXECUTION_WORKERS
    settings = _settings(a, **overrides)
    kta_log.setup("kta", settings.log_level, settings.log_format)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("KTA_")}, **to_env(settings),
           "PYTHONUNBUFFERED": "1"}
    logs = data_dir / "logs"
    children: list[Child] = []
    if not external_nats:
        (data_dir / "nats").mkdir(exist_ok=True)
        children.append(Child("nats", natsd.args(nats_port, data_dir / "nats", auth=auth), env,
                              _tcp_ready("127.0.0.1", nats_port), log_path=str(logs / "nats.log"),
                              infrastructure=True))
    if not a.no_sim:
        edis = ("--edis", a.sim_edis) if a.sim_edis else ()
        day = ("--date", a.sim_date.isoformat()) if a.sim_date else ()
        children.append(Child("sim", python_argv("sim", "--redirect-url", f"{settings.gateway_url}/auth/kite/callback",
                                                 "--settle", "--snapshot", str(data_dir / "sim-snapshot.json"), *edis,
                                                 *day),
                              env, _tcp_ready("127.0.0.1", sim_port), log_path=str(logs / "sim.log"),
                              infrastructure=True))
    copies = {"ticker": 1, "strategy": 1, "execution": settings.execution_workers}
    for service, n in copies.items():
        for name in [service] + [f"{service}-{i}" for i in range(2, n + 1)]:  # copies share the users' partitions
            children.append(Child(name, python_argv("worker", service), env,
                                  _worker_ready(nats_url, service, settings.nats_creds),
                                  log_path=str(logs / f"{name}.log")))
    children.append(Child("gateway", python_argv("gateway"), env, _tcp_ready(settings.gateway_host, gw_port),
                          log_path=str(logs / "gateway.log")))

    def ready() -> None:
        from gateway import users

        if a.no_sim:
            known = ", ".join(u["zerodha_id"] for u in users.list_users(settings)) or "none yet: kta users add"
            how = (f"  broker: the real Kite at {settings.kite_root}; users: {known}\n"
                   f"  log in with your Zerodha client id and email, then \"Connect Kite\" (Kite's own login)")
        else:
            users.ensure_demo_user(settings)
            how = ("  log in with Zerodha ID DEMO01 and email demo@kta.local; the OTP is shown on the page (dev mode)\n"
                   "  then \"Connect Kite\" and sign in to the paper broker (kite_sim) as DEMO01 / demo")
        print(f"""
kta is up: {settings.gateway_url}
{how}
  logs: {logs}   data: {data_dir}   stop: Ctrl-C
  NATS: {nats_url} (authenticated; a trader's read-only key: kta users nats-creds ID)
""", flush=True)

    sys.exit(Supervisor(children).run(on_ready=ready))


def _global_options(p: argparse.ArgumentParser, default=None) -> None:
    g = p.add_argument_group("global options (before or after the subcommand)")
    g.add_argument("--config", default=default, help="TOML settings file (KTA_* environment variables override it)")
    g.add_argument("--data-dir", default=default, help="where databases, logs and JetStream live (default ./var)")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kta", description="Algorithmic trading for Zerodha Kite users")
    _global_options(p)
    common = argparse.ArgumentParser(add_help=False)
    _global_options(common, argparse.SUPPRESS)  # SUPPRESS: an absent option leaves the one given before alone
    sub = p.add_subparsers(dest="command", required=True)
    sub.add_parser = functools.partial(sub.add_parser, parents=[common])

    up = sub.add_parser("up", help="run the whole stack: nats-server, kite_sim, workers, gateway")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--port", type=int, default=8000, help="gateway port")
    up.add_argument("--sim-port", type=int, default=0)
    up.add_argument("--nats-port", type=int, default=0)
    up.add_argument("--sim-speed", type=float, default=None, help="market clock speed of kite_sim")
    up.add_argument("--sim-seed", type=int, default=None)
    up.add_argument("--sim-admin", action="store_true", help="enable kite_sim's fault-injection API")
    up.add_argument("--no-sim", action="store_true", help="use the real Kite (set KTA_KITE_ROOT etc.)")
    up.add_argument("--sim-edis", default="", metavar="USERS", help=EDIS_HELP)
    up.add_argument("--sim-date", type=date.fromisoformat, default=None, metavar="YYYY-MM-DD",
                    help="the paper market's first trading day (a fresh data dir: a snapshot carries its own), e.g. "
                         "a monthly expiry to hold a future into it")
    up.add_argument("--json-logs", action="store_true")
    up.set_defaults(fn=cmd_up)

    sim = sub.add_parser("sim", help="run kite_sim, the paper broker")
    add_sim_options(sim)
    sim.set_defaults(fn=cmd_sim)

    worker = sub.add_parser("worker", help="run one worker")
    worker.add_argument("service", choices=["ticker", "strategy", "execution"])
    worker.set_defaults(fn=cmd_worker)

    gw = sub.add_parser("gateway", help="run the web gateway")
    gw.add_argument("--host", default=None)
    gw.add_argument("--port", type=int, default=None)
    gw.set_defaults(fn=cmd_gateway)

    users = sub.add_parser("users", help="manage users")
    users.add_argument("action", choices=["add", "list", "remove", "nats-creds", "egress"])
    users.add_argument("zerodha_id", nargs="?")
    users.add_argument("--email", default="")
    users.add_argument("--name", default="")
    users.add_argument("--api-key", default="")
    users.add_argument("--api-secret", default="")
    users.add_argument("--days", type=int, default=90, help="nats-creds: how long the read-only key is valid")
    users.add_argument("--out", "-o", default="", help="nats-creds: file to write (default ID.creds; - = stdout)")
    users.add_argument("--revoke", action="store_true", help="nats-creds: revoke every read-only key of the user")
    users.add_argument("--proxy", default="", help="egress: a proxy URL that owns the static IP registered with Kite")
    users.add_argument("--local-address", default="", help="egress: or a source address of this machine (that IP)")
    users.set_defaults(fn=cmd_users)

    from strategy_worker.backtest.cli import (
        add_parsers,  # their options live beside them (imports stay lazy)
    )

    backtest, candles = add_parsers(sub)
    backtest.set_defaults(fn=cmd_backtest)
    candles.set_defaults(fn=cmd_candles)

    doc = sub.add_parser("doctor", help="check the settings for trading through the real Kite (docs/real-kite.md)")
    doc.add_argument("--network", action="store_true",
                     help="also reach the broker (KTA_KITE_ROOT) directly and through each user's egress, and ask "
                          "each connected user's session for a quote (the market-data plan)")
    doc.set_defaults(fn=cmd_doctor)

    ver = sub.add_parser("version")
    ver.set_defaults(fn=lambda a: print(f"kta {VERSION}"))
    return p


def main(argv: list[str] | None = None) -> None:
    a = parser().parse_args(argv)
    if a.command == "users" and a.action in ("add", "remove", "nats-creds", "egress") and not a.zerodha_id:
        sys.exit(f"kta users {a.action} needs a Zerodha ID")
    a.fn(a)


if __name__ == "__main__":
    main()

