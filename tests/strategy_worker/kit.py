"""Small factories for strategy tests: instruments, a context, runners, bars from closes, a bar feeder
that does what the engine does before ``on_bar`` (the bar's close becomes the token's last tick),
and ``Desk``: the execution worker's side of the outcome contract (StrategyOutcome as
``shared/messages/trading.py`` defines it), so a strategy's books can be driven through fills,
refusals, rollbacks and external adjustments without a broker."""

from __future__ import annotations

import itertools
from datetime import date, datetime

from shared.ist import IST
from shared.kite.models import Instrument
from shared.messages import Bar, Signal, SignalGroup, StrategyOutcome, Tick, to_paise
from strategy_worker.runner import StrategyRunner
from strategy_worker.strategies import registry
from strategy_worker.strategies.context import StrategyContext

OPEN = int(datetime(2026, 11, 24, 9, 15, tzinfo=IST).timestamp())
INFY = 408065
TCS = 2953217
NIFTY = 256265
NIFTY_FUT = 13238786


def _eq(token: int, exchange_token: int, symbol: str, name: str) -> Instrument:
    return Instrument(instrument_token=token, exchange_token=exchange_token, tradingsymbol=symbol, name=name,
                      last_price=0, expiry=None, strike=0, tick_size=0.05, lot_size=1, instrument_type="EQ",
                      segment="NSE", exchange="NSE")


INSTRUMENTS = [
    _eq(INFY, 1594, "INFY", "INFOSYS"),
    _eq(TCS, 11536, "TCS", "TATA CONSULTANCY SERV LT"),
    Instrument(instrument_token=NIFTY, exchange_token=1001, tradingsymbol="NIFTY 50", name="NIFTY 50",
               last_price=0, expiry=None, strike=0, tick_size=0, lot_size=0, instrument_type="EQ",
               segment="INDICES", exchange="NSE"),
    Instrument(instrument_token=NIFTY_FUT, exchange_token=51714, tradingsymbol="NIFTY26DECFUT", name="NIFTY",
               last_price=0, expiry=date(2026, 12, 29), strike=0, tick_size=0.1, lot_size=65,
               instrument_type="FUT", segment="NFO-FUT", exchange="NFO"),
]


def context() -> StrategyContext:
    return StrategyContext(list(INSTRUMENTS), {}, clock=lambda: OPEN)  # the bars' day (not the machine's date)


def make(name: str, params: dict | None = None, tokens=(INFY,), ctx: StrategyContext | None = None,
         strategy_id: str = "s1") -> StrategyRunner:
    cls = registry.get(name)
    return StrategyRunner(cls, strategy_id, "DEMO01", registry.validate_params(name, params or {}), list(tokens),
                          ctx or context())


def bars(closes, token: int = INFY, spread: float = 0.5, volumes=None, interval: str = "5minute",
         start: int = OPEN) -> list[Bar]:
    volumes = volumes or [1000] * len(closes)
    return [Bar(token, interval, start + 300 * i, c, c + spread, c - spread, c, v)
            for i, (c, v) in enumerate(zip(closes, volumes))]


def tick_at(runner: StrategyRunner, bar: Bar) -> None:
    tick = Tick(bar.instrument_token, "full", True, bar.close, exchange_timestamp=bar.start + 299,
                received_at=(bar.start + 299) * 10**9)
    runner.ctx.last_ticks[bar.instrument_token] = tick


def feed(runner: StrategyRunner, series: list[Bar], desk: Desk | None = None) -> list[tuple[int, object]]:
    """(bar index, signal) for everything the runner sent. With a ``desk`` every signal is filled
    in full at once (and what the fills make the strategy send is filled too)."""
    out = []
    for i, bar in enumerate(series):
        tick_at(runner, bar)
        pending = list(runner.on_bar(bar))
        while pending:
            sig = pending.pop(0)
            out.append((i, sig))
            if desk is not None:
                pending += desk.fill(runner, sig)
    return out


class Desk:
    """Positions per (strategy, token) from fills, and the outcomes that report them."""

    def __init__(self) -> None:
        self.position: dict[tuple[str, int], int] = {}
        self.seq = itertools.count(1)
        self.trades = itertools.count(1)

    def held(self, runner: StrategyRunner, token: int) -> int:
        return self.position.get((runner.strategy_id, token), 0)

    def _outcome(self, runner: StrategyRunner, kind: str, sig=None, token: int = 0, side=None,
                 qty: int = 0, price: float = 0.0, order_kind: str = "", code: str = "", reason: str = "",
                 symbol: str = "") -> StrategyOutcome:
        # as the execution worker sends them: a group's outcomes name it by group_id
        ids = {} if sig is None else {"group_id": sig.id} if isinstance(sig, SignalGroup) else {"signal_id": sig.id}
        return StrategyOutcome(user_id=runner.user_id, strategy_id=runner.strategy_id, kind=kind, seq=next(self.seq),
                               **ids, order_kind=order_kind, instrument_token=token,
                               tradingsymbol=symbol, transaction_type=side, quantity=qty, price=to_paise(price),
                               position=self.held(runner, token) if token else 0,
                               average_price=to_paise(price) if token and self.held(runner, token) else 0,
                               code=code, reason=reason, trade_id=f"T{next(self.trades)}" if kind.endswith("fill")
                               or kind == "filled" else "")

    def book(self, runner: StrategyRunner, token: int, delta: int) -> None:
        key = (runner.strategy_id, token)
        self.position[key] = self.position.get(key, 0) + delta
        if not self.position[key]:
            del self.position[key]

    def fill(self, runner: StrategyRunner, sig: Signal | SignalGroup, qty: int | None = None,
             legs: int | None = None) -> list:
        """Fill ``sig`` (``qty`` of a single signal; the first ``legs`` legs of a group) at the last
        prices; returns what the runner sends in answer."""
        out = list(runner.apply(self._outcome(runner, "accepted", sig)))
        for leg in (sig.legs[:legs] if isinstance(sig, SignalGroup) else [sig]):
            q = qty or leg.quantity
            sign = 1 if leg.transaction_type.value == "BUY" else -1
            self.book(runner, leg.instrument_token, sign * q)
            price = runner.ctx.ltp(leg.instrument_token) or 100.0
            out += runner.apply(self._outcome(runner, "filled", sig, leg.instrument_token, leg.transaction_type, q,
                                              price, order_kind=sig.intent, symbol=leg.tradingsymbol))
        return out

    def refuse(self, runner: StrategyRunner, sig, code: str = "POSITION_SIZE", reason: str = "too big") -> list:
        token = sig.instrument_token if isinstance(sig, Signal) else 0
        return runner.apply(self._outcome(runner, "refused", sig, token, code=code, reason=reason))

    def cancel(self, runner: StrategyRunner, sig: Signal, unfilled: int) -> list:
        return runner.apply(self._outcome(runner, "cancelled", sig, sig.instrument_token, sig.transaction_type,
                                          unfilled, order_kind=sig.intent))

    def roll_back(self, runner: StrategyRunner, group: SignalGroup, filled_legs: int) -> list:
        """The first ``filled_legs`` legs filled, the next failed: what filled is squared off."""
        out = self.fill(runner, group, legs=filled_legs)
        out += runner.apply(self._outcome(runner, "rejected", group, group.legs[filled_legs].instrument_token,
                                          reason="margin"))
        for leg in group.legs[:filled_legs]:
            sign = 1 if leg.transaction_type.value == "BUY" else -1
            self.book(runner, leg.instrument_token, -sign * leg.quantity)
            out += runner.apply(self._outcome(runner, "rolled_back", group, leg.instrument_token,
                                              order_kind="rollback", qty=leg.quantity))
        return out

    def protective(self, runner: StrategyRunner, sig: Signal, price: float) -> list:
        """The entry's stop-loss (or target) filled at the broker."""
        self.book(runner, sig.instrument_token, -self.held(runner, sig.instrument_token))
        return runner.apply(self._outcome(runner, "protective_fill", sig, sig.instrument_token, None,
                                          sig.quantity, price, order_kind="stop_loss"))

    def external(self, runner: StrategyRunner, token: int, position: int, reason: str = "MIS square-off") -> list:
        self.book(runner, token, position - self.held(runner, token))
        return runner.apply(self._outcome(runner, "external", None, token, order_kind="external", reason=reason))
