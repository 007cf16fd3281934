"""Builders shared by the execution worker's end-to-end tests (real messages, nothing mocked)."""

from __future__ import annotations

import time
from typing import TypeVar

from execution_worker.engine import Desk
from execution_worker.journal import Journal
from shared import messages as m
from shared.kite.client import KiteClient
from shared.trading.risk import RiskManager
from tests.simkit import login

USER = "DEMO01"
T = TypeVar("T")


async def collected(bus, subject: str, kind: type[T]) -> list[T]:
    """Every message published on ``subject`` from now on, decoded as ``kind``, in arrival order."""
    got: list[T] = []

    async def on_message(message: T, msg) -> None:
        got.append(message)

    await bus.subscribe(subject, kind, on_message)
    return got


def signal(sid, side="BUY", qty=2, intent="entry", stop=None, target=None, symbol="INFY", token=408065,
           user=USER, strategy_id="test-1"):
    return m.Signal(id=sid, user_id=user, strategy_id=strategy_id, strategy="manual", exchange=m.Exchange.NSE,
                    tradingsymbol=symbol, instrument_token=token, transaction_type=m.TransactionType(side),
                    quantity=qty, product=m.Product.MIS, order_type=m.OrderType.MARKET, stop_loss=stop, target=target,
                    intent=intent, created_at=time.time_ns())


def option_leg(inst, side, hedge, lots=1, order_type=m.OrderType.MARKET, price=0):
    return m.Leg(exchange=m.Exchange.NFO, tradingsymbol=inst.tradingsymbol, instrument_token=inst.instrument_token,
                 transaction_type=m.TransactionType(side), quantity=inst.lot_size * lots, lot_size=inst.lot_size,
                 order_type=order_type, price=price, is_hedge=hedge, option_type=inst.instrument_type,
                 strike=int(inst.strike * 100), expiry=inst.expiry.isoformat())


async def nifty_chain(kite, option_type="CE"):
    """Strike → Instrument of NIFTY's second expiry (not expiring today: every leg has value)."""
    instruments = [i for i in await broker(kite.instruments, "NFO") if i.name == "NIFTY" and i.instrument_type == option_type]
    expiry = sorted({i.expiry for i in instruments})[1]
    return {i.strike: i for i in instruments if i.expiry == expiry}


def group_tag_digest(group_id: str) -> str:
    """The part of every kta tag of a group's orders that names the group."""
    from shared.trading.planning import make_tag

    return make_tag(group_id, "entry")[1:15]


async def broker(call, *args, **kw):
    """A broker call from the test, retried past 429s: the test shares the api key's request budget
    (10/s) with the worker under test, as a second app session would."""
    from shared.kite import errors
    from tests.helpers import eventually

    async def attempt():
        try:
            return (await call(*args, **kw),)
        except errors.TooManyRequests:
            return None

    return (await eventually(attempt, what=f"{call.__name__} within the rate limit"))[0]


def fresh_desk(sim, bus, data_dir):
    """A desk of USER driven directly by a test: the sim's account reset (no faults, INFY at 1,500), a
    logged-in client and the journal in ``data_dir``. Returns (desk, kite client, journal)."""
    sim.reset_faults()
    sim.admin("accounts/reset", {"user_id": USER})
    sim.admin("price", {"underlying": "INFY", "price": 1500.0})
    kite = KiteClient(sim.api_key, login(sim), root=sim.root)
    journal = Journal(data_dir / "journal.db")
    return Desk(USER, bus, journal, kite, RiskManager(USER, None, journal), {}, -1, 0.5), kite, journal
