"""What the worker gives every strategy instance: the instrument list, the last tick of each token,
the exchange clock, open interest by chain and the day's circuit bands. Market data only; nothing in
here belongs to one strategy or one symbol."""

from __future__ import annotations

import itertools
import time
from datetime import datetime
from collections.abc import Callable
from typing import Any

from shared.ist import IST
from shared.kite.models import Instrument
from shared.messages import Tick
from shared.options.oi import OITracker

INDEX_UNDERLYING = {"NIFTY 50": "NIFTY", "NIFTY BANK": "BANKNIFTY", "NIFTY FIN SERVICE": "FINNIFTY"}


class StrategyContext:
    def __init__(self, instruments: list[Instrument], last_ticks: dict[int, Tick],
                 clock: Callable[[], int] = lambda: int(time.time())) -> None:
        self.last_ticks = last_ticks
        self.clock = clock  # exchange time (epoch s) of the latest tick seen
        self.oi: dict[tuple[str, Any], OITracker] = {}  # (underlying name, expiry) -> OI by strike
        # traded token -> (lower, upper) circuit limit in rupees for the day (from Kite's quote)
        self.bands: dict[int, tuple[float, float]] = {}
        self._futures: dict[tuple, Instrument | None] = {}
        self._ids = itertools.count(1)
        self._id_prefix = f"{time.time_ns():x}"
        self.set_instruments(instruments)

    def set_instruments(self, instruments: list[Instrument], by_token: dict[int, Instrument] | None = None,
                        by_symbol: dict[str, Instrument] | None = None) -> None:
        """``by_token`` / ``by_symbol``: the list's lookups built already (the instrument cache's, read only), so a
        reload of Kite's ~90,000 rows does not build them again on the event loop (~55 ms)."""
        self.instruments = instruments
        self.by_token = {i.instrument_token: i for i in instruments} if by_token is None else by_token
        self.by_symbol = {f"{i.exchange}:{i.tradingsymbol}": i for i in instruments} if by_symbol is None else by_symbol
        self._optioned: frozenset[str] | None = None  # underlyings with options in this list, found when first asked

    def track_oi(self, tick: Tick) -> None:
        """Feed an option tick's open interest to its chain's tracker (O(1))."""
        inst = self.by_token.get(tick.instrument_token)
        if inst is None or inst.instrument_type not in ("CE", "PE"):
            return
        tracker = self.oi.get((inst.name, inst.expiry))
        if tracker is None:
            tracker = self.oi[(inst.name, inst.expiry)] = OITracker({})
        tracker.strike_of[tick.instrument_token] = (inst.strike, inst.instrument_type)
        tracker.update(tick.instrument_token, tick.oi)

    def new_signal_id(self) -> str:
        return f"{self._id_prefix}{next(self._ids):x}"

    def ltp(self, token: int) -> float | None:
        t = self.last_ticks.get(token)
        return t.last_price if t else None

    def nearest_future(self, name: str) -> Instrument | None:
        """The nearest future still trading on the exchange's day (the clock's): after its expiry a contract is
        no index's nearest even while the day's new list is on its way. Cached per instrument list and day:
        strategies ask on every bar, and Kite's list is ~100k rows."""
        if len(self._futures) > 64:  # lists replaced over time: forget the old ones
            self._futures.clear()
        today = datetime.fromtimestamp(self.clock(), IST).date()
        key = (id(self.instruments), len(self.instruments), name, today)
        if key not in self._futures:
            futs = [i for i in self.instruments if i.name == name and i.instrument_type == "FUT" and i.expiry
                    and i.expiry >= today]
            self._futures[key] = min(futs, key=lambda i: i.expiry) if futs else None
        return self._futures[key]

    def has_options(self, token: int) -> bool:
        """Whether the list has options on the symbol's underlying (one scan per instrument list)."""
        if self._optioned is None:
            self._optioned = frozenset(i.name for i in self.instruments if i.instrument_type in ("CE", "PE"))
        return self.underlying_name(token) in self._optioned

    def underlying_name(self, token: int) -> str:
        inst = self.by_token.get(token)
        if inst is None:
            return ""
        if inst.segment == "INDICES":
            return INDEX_UNDERLYING.get(inst.tradingsymbol, inst.tradingsymbol)
        return inst.name if inst.instrument_type in ("FUT", "CE", "PE") else inst.tradingsymbol

    def tradable(self, token: int, lots: int = 1, quantity: int = 1) -> tuple[Instrument, int] | None:
        """The instrument a signal on ``token`` trades, and its quantity: an index is traded
        through its nearest future (``lots`` x lot size), a derivative in lots, a stock in shares."""
        inst = self.by_token.get(token)
        if inst is None:
            return None
        if inst.segment == "INDICES":
            fut = self.nearest_future(self.underlying_name(token))
            return (fut, lots * fut.lot_size) if fut else None
        if inst.instrument_type in ("FUT", "CE", "PE"):
            return inst, lots * inst.lot_size
        return inst, quantity
