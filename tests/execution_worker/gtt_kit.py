"""What the GTT tests share (``test_gtt.py``, ``test_gtt_edis.py``): a settling sim on a slow clock, CNC signals,
the journal's and the broker's view of a position and its GTTs, the sim moved to its next session."""

from __future__ import annotations

from datetime import datetime

import msgspec

from execution_worker.journal import Journal
from kite_sim.clock import CLOSE_SECONDS
from shared import ist
from shared import messages as m
from shared import subjects
from tests.execution_worker.kit import USER, broker
from tests.simkit import start_sim


def settling_sim(tmp_path_factory, name: str):
    """Settlement at each day's close (day orders expire, CNC goes to holdings), and a slow clock (a session
    lasts 37 minutes) so no close comes but the ones the tests ask for."""
    return start_sim(tmp_path_factory.mktemp(name), speed=10.0, extra=("--settle",))


def cnc(sig: m.Signal) -> m.Signal:
    return msgspec.structs.replace(sig, product=m.Product.CNC)


def next_session(sim) -> str:
    """Move the sim's market clock past today's close into the next trading day; its date."""
    clock = sim.get("/sim/clock").json()
    now = datetime.strptime(clock["now"], "%Y-%m-%d %H:%M:%S")
    sim.admin("advance", {"seconds": CLOSE_SECONDS - (now.hour * 3600 + now.minute * 60 + now.second) + 60})
    return clock["trading_day"]


def held(journal: Journal, strategy_id: str) -> int:
    return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1)
               for t in journal.trades(USER) if t["strategy_id"] == strategy_id)


async def active_gtts(kite, symbol: str = "INFY") -> list:
    return [g for g in await broker(kite.gtts) if g.status == "active" and g.condition.tradingsymbol == symbol]


async def publish(bus, sig: m.Signal) -> None:
    await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)


async def worker_on_new_day(bus, sim) -> None:
    """The worker's clock on the sim's trading day (it hears the exchange's time from its reads): an order it
    stamped with a day already over — after an ``advance``, before its next read — would be withdrawn, not held."""
    from tests.helpers import eventually

    async def on(today: str) -> bool:
        snap = await bus.request(subjects.cmd(USER, "execution", "positions"), m.GetPositions(), timeout=15)
        return ist.day((snap.data.get("exchange_ts") or 0) / 1e9) == today
    await eventually(lambda: on(sim.trading_day()), timeout=30, what="the worker on the new day")
