"""Incremental indicators: each ``update`` is O(1) and returns the new value (None until ``ready``).

Seeding and smoothing follow TA-Lib exactly (EMA seeded with the SMA of its first ``n`` values,
Wilder's smoothing for RSI and ATR seeded with plain means, population standard deviation), so the
values agree with TA-Lib to 1e-9 relative on long series. Running sums are re-summed exactly every
``_RESUM`` updates so floating-point drift never accumulates.
"""

from __future__ import annotations

import math
from collections import deque

_RESUM = 1000


class SMA:
    def __init__(self, period: int) -> None:
        if period < 1:
            raise ValueError("period must be >= 1")
        self.period = period
        self._window: deque[float] = deque(maxlen=period)
        self._sum = 0.0
        self._n = 0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, x: float) -> float | None:
        if len(self._window) == self.period:
            self._sum -= self._window[0]
        self._window.append(x)
        self._sum += x
        self._n += 1
        if self._n % _RESUM == 0:
            self._sum = math.fsum(self._window)
        if len(self._window) == self.period:
            self.value = self._sum / self.period
        return self.value


class RollingStd:
    """Population standard deviation over the last ``period`` values (TA-Lib STDDEV, nbdev=1).

    Sums are kept of values shifted by an anchor near the mean (re-anchored on every exact
    re-sum), which avoids the cancellation of the textbook sum-of-squares formula on prices."""

    def __init__(self, period: int) -> None:
        self.period = period
        self._window: deque[float] = deque(maxlen=period)
        self._k = 0.0
        self._sum = 0.0
        self._sq = 0.0
        self._n = 0
        self.mean: float | None = None
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def _resum(self) -> None:
        self._k = math.fsum(self._window) / len(self._window)
        self._sum = math.fsum(v - self._k for v in self._window)
        self._sq = math.fsum((v - self._k) ** 2 for v in self._window)

    def update(self, x: float) -> float | None:
        if len(self._window) == self.period:
            old = self._window[0] - self._k
            self._sum -= old
            self._sq -= old * old
        self._window.append(x)
        d = x - self._k
        self._sum += d
        self._sq += d * d
        self._n += 1
        if self._n == 1 or self._n % (_RESUM // 10) == 0:
            self._resum()
        if len(self._window) == self.period:
            m = self._sum / self.period
            self.mean = self._k + m
            self.value = math.sqrt(max(0.0, self._sq / self.period - m * m))
        return self.value


class ZScore:
    """(x - rolling mean) / rolling population std; 0 when the window is flat."""

    def __init__(self, period: int) -> None:
        self.std = RollingStd(period)
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, x: float) -> float | None:
        sd = self.std.update(x)
        if sd is not None:
            self.value = 0.0 if sd == 0 else (x - self.std.mean) / sd
        return self.value


class EMA:
    def __init__(self, period: int) -> None:
        self.period = period
        self.alpha = 2.0 / (period + 1)
        self._seed = SMA(period)
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, x: float) -> float | None:
        value = self.value
        if value is None:
            self.value = value = self._seed.update(x)
        else:
            self.value = value = value + self.alpha * (x - value)
        return value


class RSI:
    """Wilder's RSI, as TA-Lib: first value after ``period`` changes."""

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._prev: float | None = None
        self._gain = 0.0
        self._loss = 0.0
        self._count = 0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, x: float) -> float | None:
        if self._prev is None:
            self._prev = x
            return None
        change = x - self._prev
        self._prev = x
        gain, loss = (change, 0.0) if change > 0 else (0.0, -change)
        n = self.period
        if self._count < n:
            self._gain += gain
            self._loss += loss
            self._count += 1
            if self._count < n:
                return None
            self._gain /= n
            self._loss /= n
        else:
            self._gain = (self._gain * (n - 1) + gain) / n
            self._loss = (self._loss * (n - 1) + loss) / n
        total = self._gain + self._loss
        self.value = 0.0 if total == 0 else 100.0 * self._gain / total
        return self.value


class ATR:
    """Wilder's average true range, as TA-Lib (the first bar has no true range)."""

    def __init__(self, period: int = 14) -> None:
        self.period = period
        self._prev_close: float | None = None
        self._sum = 0.0
        self._count = 0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, high: float, low: float, close: float) -> float | None:
        prev = self._prev_close
        self._prev_close = close
        if prev is None:
            return None
        tr, hp, lp = high - low, abs(high - prev), abs(low - prev)
        # the largest of the three as max() picks it, without the call (this runs on every bar of a backtest)
        tr = hp if hp > tr else tr  # noqa: FURB136
        tr = lp if lp > tr else tr  # noqa: FURB136
        n = self.period
        if self.value is None:
            self._sum += tr
            self._count += 1
            if self._count == n:
                self.value = self._sum / n
        else:
            self.value = (self.value * (n - 1) + tr) / n
        return self.value


class BollingerBands:
    def __init__(self, period: int = 20, k: float = 2.0) -> None:
        self.k = k
        self.std = RollingStd(period)
        self.middle: float | None = None
        self.upper: float | None = None
        self.lower: float | None = None

    @property
    def ready(self) -> bool:
        return self.middle is not None

    @property
    def value(self) -> tuple[float, float, float] | None:
        return None if self.middle is None else (self.upper, self.middle, self.lower)

    def update(self, x: float) -> tuple[float, float, float] | None:
        sd = self.std.update(x)
        if sd is not None:
            self.middle = self.std.mean
            self.upper = self.middle + self.k * sd
            self.lower = self.middle - self.k * sd
        return self.value


class MACD:
    """TA-Lib's MACD: the fast EMA is seeded on the same bar as the slow one (it skips the first
    ``slow - fast`` values), the signal line is an EMA of the MACD line."""

    def __init__(self, fast: int = 12, slow: int = 26, signal: int = 9) -> None:
        if fast >= slow:
            raise ValueError("fast period must be shorter than the slow one")
        self._skip = slow - fast
        self._n = 0
        self.fast = EMA(fast)
        self.slow = EMA(slow)
        self.signal_ema = EMA(signal)
        self.macd: float | None = None
        self.signal: float | None = None
        self.hist: float | None = None

    @property
    def ready(self) -> bool:
        return self.signal is not None

    @property
    def value(self) -> tuple[float, float, float] | None:
        return None if self.signal is None else (self.macd, self.signal, self.hist)

    def update(self, x: float) -> tuple[float, float, float] | None:
        self._n += 1
        slow = self.slow.update(x)
        fast = self.fast.update(x) if self._n > self._skip else None
        if slow is None or fast is None:
            return None
        self.macd = fast - slow
        self.signal = self.signal_ema.update(self.macd)
        if self.signal is not None:
            self.hist = self.macd - self.signal
        return self.value


class VWAP:
    """Volume-weighted average price of the session, reset at the market open (09:15 IST)."""

    def __init__(self) -> None:
        self._session: int | None = None
        self._pv = 0.0
        self._v = 0.0
        self.value: float | None = None

    @property
    def ready(self) -> bool:
        return self.value is not None

    def update(self, price: float, volume: float, session: int) -> float | None:
        """``session`` identifies the trading day (e.g. the IST date ordinal); a new one resets."""
        if session != self._session:
            self._session = session
            self._pv = self._v = 0.0
        self._pv += price * volume
        self._v += volume
        self.value = self._pv / self._v if self._v else price
        return self.value
