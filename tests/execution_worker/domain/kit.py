"""Small factories for the execution domain tests (real objects, no mocks)."""

from __future__ import annotations

import zlib
from datetime import datetime

from execution_worker.journal import Journal
from shared.ist import IST
from shared.messages import Exchange, Leg, OrderRequest, OrderType, Product, Signal, SignalGroup, TransactionType

USER = "AB1234"


def ist_epoch(stamp: str) -> float:
    """'yyyy-mm-dd hh:mm:ss' in IST to epoch seconds."""
    return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S").replace(tzinfo=IST).timestamp()


class Clock:
    """A settable clock (epoch seconds) injected into the domain objects."""

    def __init__(self, stamp: str = "2026-11-24 10:00:00") -> None:
        self.t = ist_epoch(stamp)

    def __call__(self) -> float:
        return self.t

    def set(self, stamp: str) -> None:
        self.t = ist_epoch(stamp)


def journal(tmp_path, clock: Clock | None = None) -> Journal:
    return Journal(tmp_path / "journal.db", clock=clock or Clock())


def signal(id: str = "sig1", *, symbol: str = "INFY", side: str = "BUY", qty: int = 10, intent: str = "entry",
           strategy_id: str = "s1", price: int = 150000, exchange: Exchange = Exchange.NSE, **kw) -> Signal:
    return Signal(id=id, user_id=USER, strategy_id=strategy_id, strategy="ema_crossover", exchange=exchange,
                  tradingsymbol=symbol, instrument_token=408065, transaction_type=TransactionType(side),
                  quantity=qty, intent=intent, price=price, **kw)


def token_of(symbol: str) -> int:
    """A made-up instrument token, the same in every process (``hash`` of a str changes with PYTHONHASHSEED)."""
    return zlib.crc32(symbol.encode()) % 2**31


def leg(symbol: str, side: str, option_type: str, strike: int, qty: int = 50, **kw) -> Leg:
    return Leg(exchange=Exchange.NFO, tradingsymbol=symbol, instrument_token=token_of(symbol),
               transaction_type=TransactionType(side), quantity=qty, option_type=option_type,
               strike=strike, lot_size=kw.pop("lot_size", 50), expiry=kw.pop("expiry", "2026-11-26"), **kw)


def group(structure: str, legs: list[Leg], id: str = "grp1", **kw) -> SignalGroup:
    return SignalGroup(id=id, user_id=USER, strategy_id="s2", strategy="iron_condor", structure=structure,
                       underlying="NIFTY", legs=legs, **kw)


def order_request(tag: str = "kta1", *, symbol: str = "INFY", side: str = "BUY", qty: int = 10, **kw) -> OrderRequest:
    return OrderRequest(user_id=USER, exchange=Exchange.NSE, tradingsymbol=symbol, instrument_token=408065,
                        transaction_type=TransactionType(side), order_type=kw.pop("order_type", OrderType.LIMIT),
                        quantity=qty, product=Product.MIS, price=kw.pop("price", 150000), tag=tag, **kw)
