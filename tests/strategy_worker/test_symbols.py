"""A strategy on several symbols runs one independent instance per symbol: its indicators, its bars,
its stops and its position belong to that symbol only (#12: "close 25907.20 broke above VWAP
1566.07" was NIFTY against an INFY VWAP; "EMA2 1135 < EMA3 1224" on ITC at ₹411; negative stops). And
a signal whose stop or target is ≤ 0, on the wrong side of the price or outside the circuit band
never leaves the strategy — shown with the real strategies on several symbols at once."""

import re

import numpy as np
import talib

from shared.messages import Exchange, Signal, TransactionType
from tests.strategy_worker.kit import (
    INFY,
    NIFTY,
    NIFTY_FUT,
    OPEN,
    TCS,
    Desk,
    bars,
    make,
    tick_at,
)

PRICES = {INFY: 1566.0, TCS: 411.0, NIFTY: 25_907.0}


def walks(seed: int, n: int = 240) -> dict[int, list[float]]:
    rng = np.random.default_rng(seed)
    return {t: list(p * np.exp(np.cumsum(rng.normal(0, 0.006, n)))) for t, p in PRICES.items()}


def interleaved(runner, closes: dict[int, list[float]], desk: Desk | None = None):
    """Bars of every symbol, bar by bar, in time order, as the engine delivers them."""
    sent = []
    n = len(next(iter(closes.values())))
    for i in range(n):
        for token, series in closes.items():
            bar = bars([series[i]], token=token, start=OPEN + 300 * i, volumes=[1000 + 700 * (i % 9)])[0]
            tick_at(runner, bar)
            for sig in runner.on_bar(bar):
                sent.append((token, i, sig))
                if desk is not None:
                    desk.fill(runner, sig)
    return sent


def near(rupees: float, token: int, i: int, closes, pct: float = 0.25) -> bool:
    return abs(rupees - closes[token][i]) <= pct * closes[token][i]


def test_ema_crossover_on_three_symbols_keeps_three_sets_of_indicators():
    closes = walks(1)
    s = make("ema_crossover", {"fast": 5, "slow": 20}, tokens=list(PRICES))
    sent = interleaved(s, closes, Desk())
    for token, series in closes.items():
        inst = s.instances[token]
        assert inst.fast.value == talib.EMA(np.array(series), 5)[-1]
        assert inst.slow.value == talib.EMA(np.array(series), 20)[-1]
    assert {t for t, _, _ in sent} == set(PRICES)  # every symbol traded
    for token, i, sig in sent:
        assert sig.tradingsymbol == {INFY: "INFY", TCS: "TCS", NIFTY: "NIFTY26DECFUT"}[token]
        for value in re.findall(r"EMA\d+ ([\d.]+)", sig.reason):
            assert near(float(value), token, i, closes), (token, sig.reason)
        if sig.intent == "entry":
            assert near(sig.stop_loss / 100, token, i, closes) and near(sig.target / 100, token, i, closes)
            assert sig.stop_loss > 0


def test_vwap_breakout_compares_each_close_with_its_own_vwap():
    closes = walks(7)
    s = make("vwap_breakout", {"volume_factor": 0.5}, tokens=list(PRICES))
    sent = interleaved(s, closes, Desk())
    assert {t for t, _, _ in sent} == set(PRICES)
    for token, i, sig in sent:
        close, vwap = map(float, re.search(r"close ([\d.]+) .*VWAP ([\d.]+)", sig.reason).groups())
        assert close == round(closes[token][i], 2) and near(vwap, token, i, closes, 0.1), sig.reason


def test_signals_with_impossible_stops_are_refused_at_the_strategy_per_symbol():
    # TCS swings wildly: 5 standard deviations below its price is below zero
    rng = np.random.default_rng(3)
    closes = {INFY: list(1500 + rng.normal(0, 3, 60)),
              TCS: list(np.abs(400 + rng.normal(0, 150, 60)) + 5)}
    s = make("mean_reversion", {"period": 10, "entry_z": 1.2, "exit_z": 0.1, "stop_z": 5}, tokens=[INFY, TCS])
    sent = interleaved(s, closes, Desk())
    refused = [(sig.tradingsymbol, r.code) for sig, r in s.refusals]
    assert ("TCS", "BAD_STOP_LOSS") in refused and all(sym == "TCS" for sym, _ in refused)
    assert all(sig.stop_loss is None or sig.stop_loss > 0 for _, _, sig in sent)
    assert any(t == INFY for t, _, _ in sent)  # INFY trades on unaffected


def test_a_target_outside_the_circuit_band_is_refused():
    closes = walks(1)
    s = make("ema_crossover", {"fast": 5, "slow": 20, "atr_stop": 6, "reward": 8}, tokens=[INFY, TCS])
    s.ctx.bands[TCS] = (370.0, 452.0)  # ±10 % of 411: an 8 x 6 ATR target lands outside it
    sent = interleaved(s, {t: closes[t] for t in (INFY, TCS)}, Desk())
    assert {sig.tradingsymbol for sig, r in s.refusals if r.code == "OUTSIDE_CIRCUIT"} == {"TCS"}
    assert not [sig for t, _, sig in sent if t == TCS and sig.intent == "entry"]
    assert [sig for t, _, sig in sent if t == INFY]


def test_stops_on_the_wrong_side_or_at_zero_never_leave():
    s = make("ema_crossover", {"fast": 5, "slow": 20}, tokens=[INFY, NIFTY])
    base = {"user_id": "DEMO01", "strategy_id": "s1", "strategy": "ema_crossover", "exchange": Exchange.NSE,
                "tradingsymbol": "INFY", "instrument_token": INFY, "quantity": 1, "intent": "entry"}
    cases = {
        "buy stop above": Signal(id="a", transaction_type=TransactionType.BUY, stop_loss=158_000, target=160_000,
                                 metadata={"ref_price": 1566.0}, **base),
        "sell target above": Signal(id="b", transaction_type=TransactionType.SELL, stop_loss=160_000,
                                    target=157_000, metadata={"ref_price": 1566.0}, **base),
        "negative stop": Signal(id="c", transaction_type=TransactionType.BUY, stop_loss=-94_885, target=160_000,
                                metadata={"ref_price": 1566.0}, **base),
        "zero target": Signal(id="d", transaction_type=TransactionType.SELL, stop_loss=160_000, target=0,
                              metadata={"ref_price": 1566.0}, **base),
    }
    for name, sig in cases.items():
        assert s._vet(s.instances[INFY], [sig]) == [], name
    assert [r.code for _, r in s.refusals] == ["BAD_STOP_LOSS", "BAD_TARGET", "BAD_STOP_LOSS", "BAD_TARGET"]
    assert s.in_flight() == []  # a refused signal is not in flight
    assert s.required_tokens() >= {INFY, NIFTY, NIFTY_FUT}
