"""The strategy example in strategy_worker/README.md, run exactly as written: it registers, its
params are validated and catalogued, it trades on crafted bars, and it survives a restart."""

import re
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import talib

from shared.messages import TransactionType
from strategy_worker.strategies import registry
from tests.strategy_worker.kit import INFY, bars, context, feed

README = Path(__file__).resolve().parents[2] / "strategy_worker" / "README.md"


@pytest.fixture
def example():
    text = README.read_text()
    section = text.split("## Writing a strategy", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    registry.names()
    module = types.ModuleType("readme_example")  # a real module: msgspec resolves annotations there
    sys.modules[module.__name__] = module
    exec(compile(code, str(README), "exec"), module.__dict__)
    yield module.SmaTrend
    registry._REGISTRY.pop("sma_trend", None)
    sys.modules.pop(module.__name__, None)


def test_the_readme_strategy_registers_validates_and_trades(example):
    assert registry.get("sma_trend") is example
    entry = {c["name"]: c for c in registry.catalog()}["sma_trend"]
    assert {f["name"]: (f["min"], f["max"]) for f in entry["params"]}["period"] == (2, 500)
    assert all(f["description"] for f in entry["params"])
    with pytest.raises(registry.ParamsError) as e:
        registry.validate_params("sma_trend", {"period": 1})
    assert e.value.field == "period" and "allowed 2 to 500" in str(e.value)

    closes = [100.0] * 10 + [101.0, 102.0, 103.0, 102.0, 99.0, 98.0, 97.0]
    s = example("t1", "DEMO01", registry.validate_params("sma_trend", {"period": 5, "quantity": 3}), [INFY],
                context())
    out = feed(s, bars(closes))
    sma = talib.SMA(np.array(closes), 5)
    above = [i for i in range(len(closes)) if closes[i] > sma[i]]
    below = [i for i in range(above[0], len(closes)) if closes[i] < sma[i]]
    assert [(i, sig.intent, sig.transaction_type, sig.quantity) for i, sig in out] == [
        (above[0], "entry", TransactionType.BUY, 3), (below[0], "exit", TransactionType.SELL, 3)]
    assert out[0][1].stop_loss == round(101.0 * 0.99 * 100 / 5) * 5

    restarted = example("t1", "DEMO01", s.params, [INFY], context())
    s2 = example("t2", "DEMO01", s.params, [INFY], context())
    feed(s2, bars(closes[:12]))  # holding after the breakout
    restarted.restore(s2.snapshot())
    assert restarted.held(INFY) == 3
