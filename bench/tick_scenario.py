"""The tick → order bench's scenario and its report, shared by kta's run (tick_to_order.py) and the fair
baseline's (tick_baseline.py): 6 symbols × 4 strategies over 8 accounts (one Kite app each, or one api_key shared),
the warm-up, and per order the internal / rate-budget / broker / end-to-end times with their percentiles."""

from __future__ import annotations

from collections import defaultdict

from bench.stack import API_KEY, machine_load, percentile

SYMBOLS = {"RELIANCE": 738561, "INFY": 408065, "TCS": 2953217, "HDFCBANK": 341249, "ICICIBANK": 1270529,
           "SBIN": 779521}
TOKENS = list(SYMBOLS.values())
STRATEGIES_PER_SYMBOL = 4
WARMUP_BARS = 2
PER_APP = [f"BEN{i:02d}" for i in range(1, 9)]  # one Kite app (api_key) each: "app-ben01"...
SHARED = [f"SHR{i:02d}" for i in range(1, 9)]  # one api_key for all: kta-demo
ACCOUNTS = PER_APP  # the fair baseline's
SHARED_KEY = API_KEY
KEYS = {**{uid: f"app-{uid.lower()}" for uid in PER_APP}, **{uid: SHARED_KEY for uid in SHARED}}


def plan(accounts: list[str]) -> list[tuple[str, int]]:
    """Instance i trades symbol i % 6 in account i // 3: every account 3 strategies, every symbol 4."""
    return [(accounts[i // 3], TOKENS[i % 6]) for i in range(len(TOKENS) * STRATEGIES_PER_SYMBOL)]


PLAN = plan(ACCOUNTS)


def stats(values: list[float]) -> str:
    v = sorted(values)
    return f"p50 {percentile(v, 0.5):.2f} ms, p99 {percentile(v, 0.99):.2f} ms, max {v[-1]:.2f} ms" if v else "none"


class Result:
    """Per order (ms): internal, budget wait, broker wait, end to end; and the scenario's words."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.internal: list[float] = []
        self.budget: list[float] = []
        self.broker: list[float] = []
        self.e2e: list[float] = []
        self.parts: dict[str, list[float]] = defaultdict(list)

    def add(self, internal: float, budget: float, broker: float, e2e: float, **parts: float) -> None:
        self.internal.append(internal)
        self.budget.append(budget)
        self.broker.append(broker)
        self.e2e.append(e2e)
        for k, v in parts.items():
            self.parts[k].append(v)

    def p(self, values: list[float], q: float) -> float:
        return percentile(sorted(values), q)

    def print(self) -> None:
        waited = sum(1 for b in self.budget if b > 0.05)
        print(f"{self.name}: {len(self.e2e):,} orders; {machine_load()}\n"
              f"  (a) internal, tick → order handed to the HTTP client, Kite's waits excluded: {stats(self.internal)}\n"
              f"  (b) rate-budget wait (Kite's limits: 10 orders/s per account, 10 requests/s per api_key): "
              f"{stats(self.budget)}; {waited:,} of {len(self.budget):,} orders waited\n"
              f"      broker wait before the order (an exit's stop cancel confirmed, reads, an earlier order's "
              f"round trip): {stats(self.broker)}\n"
              f"  (c) end to end, tick → order at the broker's HTTP server: {stats(self.e2e)}\n"
              + "".join(f"      {k}: {stats(v)}\n" for k, v in self.parts.items()), end="", flush=True)
