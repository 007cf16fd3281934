"""The built-in strategies. ``BUILT_IN`` is the registry's source: a new strategy is one module
here and one entry in this tuple (``registry.register`` adds one from elsewhere, e.g. a test)."""

from strategy_worker.strategies.debit_spread import BearPutSpread, BullCallSpread
from strategy_worker.strategies.ema_crossover import EMACrossover
from strategy_worker.strategies.iron_condor import IronCondor
from strategy_worker.strategies.mean_reversion import MeanReversion
from strategy_worker.strategies.rsi import RSIStrategy
from strategy_worker.strategies.straddle import Straddle, Strangle
from strategy_worker.strategies.vwap_breakout import VWAPBreakout

BUILT_IN = (EMACrossover, VWAPBreakout, MeanReversion, RSIStrategy, IronCondor, Straddle, Strangle,
            BullCallSpread, BearPutSpread)
