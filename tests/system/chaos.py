"""Strategies that trade at random (seeded). ``Chaos``: entries with a stop and a target, exits, and the
mistakes a buggy strategy makes — an entry far above the position limit, an exit larger than what it
holds, an exit on a flat book. ``ChaosCondor``: an iron condor opened and closed at random. kta must keep
every invariant whatever they send."""

from __future__ import annotations

import random
from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import Meta

from shared.ist import IST
from shared.messages import Bar, Tick, TransactionType
from strategy_worker.strategies.base import BaseStrategy
from strategy_worker.strategies.iron_condor import IronCondor
from strategy_worker.strategies.option_base import EXPIRY_DAY_EXIT


def seeded(strategy, stream: object) -> random.Random:
    """The strategy instance's own generator, from its ``seed`` parameter, id and ``stream``."""
    if not hasattr(strategy, "_random"):
        strategy._random = random.Random(f"{strategy.params.seed}:{strategy.strategy_id}:{stream}")
    return strategy._random


class Chaos(BaseStrategy):
    name = "test_chaos"
    description = "test: trades at random"

    class Params(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
        quantity: Annotated[int, Meta(ge=1, le=1000, description="Shares per entry")] = 5
        seed: Annotated[int, Meta(ge=0, description="Random seed")] = 1
        rate: Annotated[float, Meta(gt=0, le=1, description="Chance to act on a tick")] = 0.02

    def on_tick(self, tick: Tick) -> list:
        rng = seeded(self, self.token)
        if rng.random() >= self.params.rate:
            return []
        target = self.tradable()
        if target is None:
            return []
        inst, qty = target
        held, roll = self.held(), rng.random()
        if not held:
            if roll < 0.1 and not self.in_flight():  # a confused strategy: "exit" a position it does not hold
                return [self._signal(inst, rng.choice(list(TransactionType)), qty, "exit", 0.5, "chaos: exit on flat",
                                     None, None, tick.last_price)]
            sig = self.entry(rng.choice(list(TransactionType)), 0.5, "chaos: entry", rng.uniform(0.002, 0.01),
                             rng.uniform(0.004, 0.03))
            if sig is not None and roll > 0.9:  # far above any position limit: refused
                sig = msgspec.structs.replace(sig, quantity=sig.quantity * 40)
            return [sig] if sig is not None else []
        if roll < 0.5:
            sig = self.exit(0.5, "chaos: exit")
            if sig is not None and roll < 0.15:  # larger than held: clamped to the position
                sig = msgspec.structs.replace(sig, quantity=sig.quantity * 3)
            return [sig] if sig is not None else []
        return []


class ChaosCondor(IronCondor):
    """An iron condor opened and closed at random (seeded) instead of by its entry window and premium
    rules: a defined-risk structure whose four legs go in and out as one group through every fault."""

    name = "test_chaos_condor"
    description = "test: an iron condor at random"

    class Params(IronCondor.Params):
        seed: Annotated[int, Meta(ge=0, description="Random seed")] = 1
        rate: Annotated[float, Meta(gt=0, le=1, description="Chance to open or close on a bar")] = 0.2
        hold_expiry: Annotated[bool, Meta(description="On its chain's expiry day: nothing at random, opened from "
                                                      "14:00 and held into the expiry (the broker settles it)")] = False

    def in_entry_window(self, bar: Bar) -> bool:
        if self._expiry_day(bar):  # a random close before 14:00 could leave an exit still working at the close
            return self._into_expiry(bar)
        return seeded(self, "condor").random() < self.params.rate

    def manage(self, bar: Bar) -> list:
        if self._expiry_day(bar):  # what it holds on the expiry day it holds into the settlement
            return []
        if seeded(self, "condor").random() < self.params.rate:
            return [self.close_structure("chaos: close the condor")]
        return super().manage(bar)

    def _expiry_day(self, bar: Bar) -> bool:
        chain = self.chain()
        return (self.params.hold_expiry and chain is not None
                and chain.expiry == datetime.fromtimestamp(bar.start, IST).date())

    def _into_expiry(self, bar: Bar) -> bool:
        now = datetime.fromtimestamp(bar.start, IST)
        return self._expiry_day(bar) and now.hour * 60 + now.minute >= EXPIRY_DAY_EXIT
