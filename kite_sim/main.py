"""``kta sim`` / ``python -m kite_sim``: run the paper broker on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
from datetime import date
from pathlib import Path

import uvicorn

from kite_sim import snapshot
from kite_sim.accounts import default_accounts
from kite_sim.app import build_app
from kite_sim.arrivals import ArrivalStamped
from kite_sim.clock import SimClock
from kite_sim.faults import Faults
from kite_sim.instruments import Universe
from kite_sim.lost_answers import AnswerLost
from kite_sim.market import Market
from kite_sim.options import Options, add_options, options_from, parse_holidays  # noqa: F401 - re-exported
from kite_sim.replay import Replay
from kite_sim.sim import Sim
from shared import log as kta_log
from shared.config import Settings, load
from shared.market_calendar import CALENDAR, MarketCalendar
from shared.stopping import run_until_signalled

logger = logging.getLogger("kite_sim")


def make_sim(seed: int, speed: float, admin: bool, redirect_url: str, rate_limits: bool = True,
             options: Options | None = None) -> Sim:
    opt = options or Options()
    replay = Replay(opt.replay) if opt.replay else None
    doc = snapshot.read(opt.snapshot)
    clock_doc = (doc or {}).get("clock") or {}
    start = date.fromisoformat(clock_doc["start_date"]) if clock_doc else (replay.first_date() if replay else opt.start_date)
    elapsed = 0.0 if opt.market_hours else float(clock_doc.get("elapsed", 0.0))
    calendar = CALENDAR if opt.holidays is None else MarketCalendar.fixed(opt.holidays)
    clock = SimClock(speed=speed, start_date=start, calendar=calendar, hours=opt.market_hours, elapsed=elapsed)
    market = Market(Universe(clock.start_date, calendar), clock, seed, replay)
    faults = Faults()
    if opt.faults:
        faults.update(json.loads(Path(opt.faults).read_text()))
        logger.info("faults from %s: %s", opt.faults, faults.as_dict())
    sim = Sim(default_accounts(redirect_url, opt.token_expiry_hour), market, faults, admin, rate_limits, settle=opt.settle,
              snapshot_path=opt.snapshot or None, restore=doc)
    for user in opt.edis:
        if user not in sim.accounts.users:
            raise SystemExit(f"--edis: unknown user {user!r} (known: {', '.join(sim.accounts.users)})")
        sim.broker.account(user).depository.edis = True
        logger.info("account %s: eDIS authorisation required for delivery sells", user)
    return sim


class _DenialNoise(logging.Filter):
    """uvicorn's sansio WebSocket protocol logs an error after every denial response it has sent correctly (the
    403 / 429 the ticker answers an upgrade with never completes a handshake, by design): drop that line; and
    the traceback of the connection the lost-answer fault drops on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        while error is not None:  # Litestar re-raises it, wrapped twice
            if isinstance(error, AnswerLost):
                return False  # the lost-answer fault, already logged as such
            error = error.__cause__
        return record.getMessage() != "ASGI callable returned without completing handshake."


def redirect_for(settings: Settings) -> str:
    return f"{settings.gateway_url}/auth/kite/callback"


async def amain(settings: Settings, stop: asyncio.Event | None = None, redirect_url: str = "",
                options: Options | None = None) -> None:
    sim = make_sim(settings.sim_seed, settings.sim_speed, settings.sim_admin, redirect_url or redirect_for(settings),
                   options=options)
    opt = options or Options()
    if bool(opt.tls_cert) != bool(opt.tls_key):
        raise SystemExit("--tls-cert and --tls-key go together")
    config = uvicorn.Config(build_app(sim), host=settings.sim_host, port=settings.sim_port, log_level="warning",
                            ws="websockets-sansio", http=ArrivalStamped, lifespan="on", log_config=None,
                            ssl_certfile=opt.tls_cert or None, ssl_keyfile=opt.tls_key or None)
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_DenialNoise())
    logger.info("kite_sim listening on %s://%s:%d (speed %gx, seed %d, admin %s, market hours %s, settle %s, "
                "replay %s, snapshot %s)", "https" if opt.tls_cert else "http", settings.sim_host, settings.sim_port, settings.sim_speed, settings.sim_seed,
                settings.sim_admin, opt.market_hours, opt.settle, opt.replay or "-", opt.snapshot or "-")
    if stop is None:
        await server.serve()
        return
    serving = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await serving


def run(settings: Settings, redirect_url: str = "", options: Options | None = None) -> None:
    kta_log.setup("sim", settings.log_level, settings.log_format)
    run_until_signalled(lambda stop: amain(settings, stop, redirect_url, options), settings.event_loop)


def cli(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="kite_sim", description="Kite Connect paper broker")
    add_options(p)
    a = p.parse_args(argv)
    settings = load(sim_host=a.host, sim_port=a.port, sim_seed=a.seed, sim_speed=a.speed, sim_admin=a.admin)
    run(settings, a.redirect_url, options_from(a))


