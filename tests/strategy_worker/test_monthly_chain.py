"""An option strategy on BANKNIFTY, whose only expiry is a monthly a month away: its 0.2-delta shorts are some
two dozen strikes from the money. Found in a trader session (2026-12-02): an iron condor on NIFTY BANK sent no
signal in a day and a half live and took 0 trades in a month's backtest. kite_sim listed 15 strikes a side, so
the wings fell off the chain; and a strategy followed only the 12 strikes each side of the money, so the strikes
it would trade had no price (their deltas guessed, their market orders refused PRICE_UNKNOWN). Now the chain
spans the move to its expiry, as the exchange lists it, and a strategy follows the strikes it plans to trade.

Live as in the worker: only what the strategy follows (``required_tokens``) gets ticks."""

import math
from datetime import date, datetime

from kite_sim.instruments import INDICES, listed_each_side
from shared.ist import IST
from shared.messages import Bar, SignalGroup, Tick
from shared.options.chain import RATE, years_to_expiry
from strategy_worker.runner import StrategyRunner
from strategy_worker.strategies import registry
from strategy_worker.strategies.context import StrategyContext
from tests.shared.test_options import sim_instruments
from tests.vollib import black as vl_black

DAY = date(2026, 11, 25)  # the day after November's BANKNIFTY expiry: the nearest is December's monthly
BANKNIFTY, SPOT = 260105, 58_000.0
INSTRUMENTS = sim_instruments(DAY)
OPTIONS = {i.instrument_token: i for i in INSTRUMENTS if i.name == "BANKNIFTY" and i.instrument_type in ("CE", "PE")}
EXPIRY = min(i.expiry for i in OPTIONS.values())


def _at(hour: int, minute: int) -> int:
    return int(datetime(DAY.year, DAY.month, DAY.day, hour, minute, tzinfo=IST).timestamp())


class _Feed:
    """The ticker: prices (Black-76 on a flat 16 % vol) only for the tokens the strategy follows."""

    def __init__(self) -> None:
        self.now = _at(9, 30)
        self.ctx = StrategyContext(INSTRUMENTS, {}, clock=lambda: self.now)
        self.ctx.last_ticks[BANKNIFTY] = self._tick(BANKNIFTY, SPOT)

    def _tick(self, token: int, price: float) -> Tick:
        return Tick(token, "full", True, price, exchange_timestamp=self.now, received_at=self.now * 10**9)

    def follow(self, runner: StrategyRunner) -> set[int]:
        followed = runner.required_tokens()
        t = years_to_expiry(EXPIRY, self.now)
        for token in followed & OPTIONS.keys():
            i = OPTIONS[token]
            self.ctx.last_ticks[token] = self._tick(token, vl_black(i.instrument_type[0].lower(), SPOT, i.strike, t,
                                                                    RATE, 0.16))
        return followed

    def bar(self, runner: StrategyRunner, hour: int, minute: int) -> list:
        self.now = _at(hour, minute) + 299
        return runner.on_bar(Bar(BANKNIFTY, "5minute", _at(hour, minute), SPOT, SPOT + 20, SPOT - 20, SPOT, 0))


def _runner(feed: _Feed, name: str, params: dict) -> StrategyRunner:
    return StrategyRunner(registry.get(name), "bn1", "DEMO01", registry.validate_params(name, params), [BANKNIFTY],
                          feed.ctx)


def test_the_monthly_chain_spans_the_move_to_its_expiry():
    u = next(u for u in INDICES if u.name == "BANKNIFTY")
    days = (EXPIRY - DAY).days
    strikes = sorted({i.strike for i in OPTIONS.values() if i.expiry == EXPIRY})
    sd = u.annual_vol * math.sqrt(days / 365) * SPOT  # one standard deviation of the move to expiry
    assert strikes[0] <= SPOT - 3 * sd + u.step and strikes[-1] >= SPOT + 3 * sd - u.step
    assert len(strikes) == 2 * listed_each_side(u, SPOT, days, 15) + 1


def _entered(name: str, params: dict) -> SignalGroup:
    feed = _Feed()
    s = _runner(feed, name, params)
    for minute in range(30, 60, 5):  # the ticker follows what the strategy asks for, bar after bar
        followed = feed.follow(s)
        out = feed.bar(s, 9, minute)
        if out:
            (group,) = out
            assert {leg.instrument_token for leg in group.legs} <= followed  # every leg priced live
            return group
    raise AssertionError(f"{name} never entered on BANKNIFTY's monthly chain")


def test_an_iron_condor_on_banknifty_enters_with_its_wings_on_the_chain():
    group = _entered("iron_condor", {"short_delta": 0.2, "wing_steps": 4})
    strikes = sorted((leg.strike, leg.option_type, leg.transaction_type) for leg in group.legs)
    (lp, _, _), (sp, _, _), (sc, _, _), (lc, _, _) = strikes
    assert lp < sp < SPOT * 100 < sc < lc  # (paise) wings beyond the shorts, the spot between them
    assert (sc - SPOT * 100) / 10_000 > 12  # a short further out than the 12 strikes near the money


def test_a_strangle_on_banknifty_enters_with_every_leg_followed():
    group = _entered("strangle", {"strangle_delta": 0.15})
    assert len(group.legs) == 4
