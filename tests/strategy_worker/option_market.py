"""A NIFTY option market for the option-strategy tests: kite_sim's real chain for a known day, priced with
py_vollib's Black-76 on a known smile at a settable clock (``Market``), and the expected shapes of groups
(legs, stop and target on the net premium). Expected strikes come from py_vollib deltas, not our chain code."""

import math
from datetime import date, datetime

import numpy as np

from shared.ist import IST
from shared.messages import Bar, SignalGroup, Tick, TransactionType, to_paise
from shared.options.chain import RATE, years_to_expiry
from strategy_worker.runner import StrategyRunner
from strategy_worker.strategies import registry
from strategy_worker.strategies.context import StrategyContext
from tests.shared.test_options import sim_instruments
from tests.vollib import black as vl_black
from tests.vollib import black_delta as vl_delta

BUY, SELL = TransactionType.BUY, TransactionType.SELL
DAY = date(2026, 11, 25)  # a Wednesday: the nearest NIFTY weekly expires next Tuesday
NIFTY, LOT, FWD = 256265, 65, 26_040.0
INSTRUMENTS = sim_instruments(DAY)
EXPIRY = min(i.expiry for i in INSTRUMENTS if i.name == "NIFTY" and i.instrument_type == "CE")
CHAIN = sorted((i for i in INSTRUMENTS if i.name == "NIFTY" and i.expiry == EXPIRY), key=lambda i: i.strike)
STRIKES = sorted({i.strike for i in CHAIN})
OPT = {(i.strike, i.instrument_type): i for i in CHAIN}


def at(hour: int, minute: int) -> int:
    return int(datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=IST).timestamp())


def smile(k: float, base: float = 0.12) -> float:
    return base + 0.25 * math.log(k / FWD) ** 2


class Market:
    """A context whose last ticks are the chain priced at FWD on the smile, and a settable clock."""

    def __init__(self, base_vol: float = 0.12) -> None:
        self.now = at(10, 0)
        self.live = False  # reprice the chain at every bar's time
        self.ctx = StrategyContext(INSTRUMENTS, {}, clock=lambda: self.now)
        self.reprice(base_vol)

    def t(self) -> float:
        return years_to_expiry(EXPIRY, self.now)

    def reprice(self, base_vol: float = 0.12, fwd: float = FWD) -> None:
        self.vol = base_vol
        for (k, kind), inst in OPT.items():
            self.set(inst.instrument_token, vl_black(kind[0].lower(), fwd, k, self.t(), RATE, smile(k, base_vol)))

    def set(self, token: int, price: float) -> None:
        self.ctx.last_ticks[token] = Tick(token, "full", True, price, exchange_timestamp=self.now)

    def price(self, strike: float, kind: str) -> float:
        return self.ctx.last_ticks[OPT[(strike, kind)].instrument_token].last_price

    def by_delta(self, kind: str, target: float) -> float:
        flag = "c" if kind == "CE" else "p"
        d = [vl_delta(flag, FWD, k, self.t(), RATE, smile(k, self.vol)) for k in STRIKES]
        return STRIKES[int(np.argmin(np.abs(np.array(d) - target)))]

    def strategy(self, name: str, params: dict | None = None, sid: str = "opt1") -> StrategyRunner:
        return StrategyRunner(registry.get(name), sid, "DEMO01", registry.validate_params(name, params or {}),
                              [NIFTY], self.ctx)

    def bar(self, strategy, close: float, hour: int, minute: int, token: int = NIFTY) -> list:
        """One completed 5-minute bar of ``token`` at hh:mm, its close the spot's last tick."""
        self.now = at(hour, minute) + 299
        if self.live:
            self.reprice(self.vol)
        tick = Tick(token, "full", True, close, exchange_timestamp=self.now, received_at=self.now * 10**9)
        self.ctx.last_ticks[token] = tick
        return strategy.on_bar(Bar(token, "5minute", at(hour, minute), close, close + 2, close - 2, close, 0))


def shape(group: SignalGroup) -> list[tuple]:
    return [(leg.tradingsymbol, leg.transaction_type, leg.quantity, leg.is_hedge, leg.strike, leg.option_type)
            for leg in group.legs]


def leg(strike: float, kind: str, side, lots: int, hedge: bool = False) -> tuple:
    inst = OPT[(strike, kind)]
    return (inst.tradingsymbol, side, lots * LOT, hedge, to_paise(strike), kind)


def expected_stop_target(mkt: Market, legs: list[tuple], stop_pct: float, target_pct: float) -> tuple[int, int]:
    premium = sum(mkt.price(s, k) * q * (1 if side is SELL else -1) for (s, k, side, q) in legs)
    return to_paise(round(premium + stop_pct * abs(premium), 2)), to_paise(round(premium - target_pct * abs(premium), 2))


def reversed_legs(group: SignalGroup) -> list[tuple]:
    flip = {BUY: SELL, SELL: BUY}
    return [(s, flip[side], q, h, k, o) for (s, side, q, h, k, o) in shape(group)]
