"""``kta sim`` / ``python -m kite_sim``: run the paper broker on 127.0.0.1."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

import uvicorn

from kite_sim.accounts import default_accounts
from kite_sim.app import Sim, build_app
from kite_sim.clock import SimClock
from kite_sim.faults import Faults
from kite_sim.instruments import Universe
from kite_sim.market import Market
from shared import log as kta_log
from shared.config import Settings, load

logger = logging.getLogger("kite_sim")


def make_sim(seed: int, speed: float, admin: bool, redirect_url: str, rate_limits: bool = True) -> Sim:
    clock = SimClock(speed=speed)
    market = Market(Universe(clock.start_date), clock, seed)
    return Sim(default_accounts(redirect_url), market, Faults(), admin, rate_limits)


def redirect_for(settings: Settings) -> str:
    return f"{settings.gateway_url}/auth/kite/callback"


async def amain(settings: Settings, stop: asyncio.Event | None = None, redirect_url: str = "") -> None:
    sim = make_sim(settings.sim_seed, settings.sim_speed, settings.sim_admin, redirect_url or redirect_for(settings))
    config = uvicorn.Config(build_app(sim), host=settings.sim_host, port=settings.sim_port, log_level="warning",
                            ws="websockets-sansio", lifespan="on", log_config=None)
    server = uvicorn.Server(config)
    logger.info("kite_sim listening on http://%s:%d (speed %gx, seed %d, admin %s)", settings.sim_host,
                settings.sim_port, settings.sim_speed, settings.sim_seed, settings.sim_admin)
    if stop is None:
        await server.serve()
        return
    serving = asyncio.create_task(server.serve())
    await stop.wait()
    server.should_exit = True
    await serving


def run(settings: Settings, redirect_url: str = "") -> None:
    kta_log.setup("sim", settings.log_level, settings.log_format)
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await amain(settings, stop, redirect_url)

    asyncio.run(main())


def cli(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="kite_sim", description="Kite Connect paper broker")
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--speed", type=float, default=None)
    p.add_argument("--admin", action="store_true", default=None)
    p.add_argument("--redirect-url", default="")
    a = p.parse_args(argv)
    settings = load(sim_host=a.host, sim_port=a.port, sim_seed=a.seed, sim_speed=a.speed, sim_admin=a.admin)
    run(settings, a.redirect_url)
