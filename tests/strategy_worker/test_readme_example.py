"""The strategy example in strategy_worker/README.md, run exactly as written: it registers, its
params are validated and catalogued, it trades two symbols independently through fills and a
refusal, and it survives a restart."""

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import talib

from shared.messages import TransactionType
from strategy_worker.strategies import registry
from tests.strategy_worker.kit import INFY, TCS, Desk, bars, feed, make

README = Path(__file__).resolve().parents[2] / "strategy_worker" / "README.md"
BUY, SELL = TransactionType.BUY, TransactionType.SELL


@pytest.fixture
def example():
    text = README.read_text()
    section = text.split("## Writing a strategy", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)
    module = types.ModuleType("readme_example")  # a real module: msgspec resolves annotations there
    sys.modules[module.__name__] = module
    exec(compile(code, str(README), "exec"), module.__dict__)
    registry.register(module.SmaTrend)
    yield module.SmaTrend
    registry.unregister("sma_trend")
    sys.modules.pop(module.__name__, None)


def test_the_readme_strategy_registers_validates_and_trades(example):
    assert registry.get("sma_trend") is example
    entry = {c["name"]: c for c in registry.catalog()}["sma_trend"]
    params = [f["name"] for f in entry["params"]]
    assert params[:2] == ["period", "stop_pct"] and set(params[2:]) == {"lots", "quantity", "intraday"}
    assert {f["name"]: (f["min"], f["max"]) for f in entry["params"]}["period"] == (2, 500)
    assert all(f["description"] for f in entry["params"])
    with pytest.raises(registry.ParamsError) as e:
        registry.validate_params("sma_trend", {"period": 1})
    assert e.value.field == "period" and "allowed 2 to 500" in str(e.value)

    closes = [100.0] * 10 + [101.0, 102.0, 103.0, 102.0, 99.0, 98.0, 97.0]
    tcs = [3000.0 + 10 * i for i in range(len(closes))]
    s, desk = make("sma_trend", {"period": 5, "quantity": 3}, tokens=[INFY, TCS]), Desk()
    out = []
    for a, b in zip(bars(closes), bars(tcs, token=TCS)):
        out += [(a.start, sig) for _, sig in feed(s, [a], desk) + feed(s, [b], desk)]
    sma = talib.SMA(np.array(closes), 5)
    above = [i for i in range(len(closes)) if closes[i] > sma[i]]
    below = [i for i in range(above[0], len(closes)) if closes[i] < sma[i]]
    start = bars(closes)[0].start
    infy = [((t - start) // 300, sig.intent, sig.transaction_type, sig.quantity) for t, sig in out
            if sig.tradingsymbol == "INFY"]
    assert infy == [(above[0], "entry", BUY, 3), (below[0], "exit", SELL, 3)]
    assert [sig.intent for _, sig in out if sig.tradingsymbol == "TCS"] == ["entry"]  # its own SMA: rising
    infy_entry = next(sig for _, sig in out if sig.tradingsymbol == "INFY")
    assert infy_entry.stop_loss == round(101.0 * 0.99 * 100 / 5) * 5
    assert s.positions() == {TCS: 3}

    s2 = make("sma_trend", {"period": 5, "quantity": 3}, tokens=[INFY])
    first = feed(s2, bars(closes[:12]))[0][1]
    desk.refuse(s2, first, "POSITION_SIZE", "above the limit")
    assert s2.instances[INFY].state == {"refusals": 1} and s2.positions() == {}
    second = feed(s2, bars(closes[12:13], start=bars(closes)[12].start))[0][1]
    desk.fill(s2, second)
    restarted = make("sma_trend", {"period": 5, "quantity": 3}, tokens=[INFY])
    restarted.restore(s2.snapshot())
    assert restarted.positions() == {INFY: 3} and restarted.instances[INFY].state == {"refusals": 1}
