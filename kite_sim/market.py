"""The seeded price process: every quote, tick and historical candle comes from here.

Per underlying, daily closes follow a random walk with occasional trend regimes; each session's
path, at one-second resolution, is a Brownian bridge from the open (previous close plus a gap) to
that close, with intraday jumps. Futures trade at cost of carry on the spot; options are priced by
Black-Scholes on the spot with a volatility smile, so IV and greeks are consistent. The same
(seed, underlying, date) always gives the same path, so historical candles and live ticks line up.
"""

from __future__ import annotations

import hashlib
import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np

from kite_sim import book
from kite_sim.clock import SESSION_SECONDS, SimClock, session_open
from kite_sim.instruments import Instrument, Universe
from shared import fills
from shared.ist import IST

RATE = 0.065  # risk-free rate for carry and option pricing
YEAR_SECONDS = 365 * 24 * 3600
HISTORY_DAYS = 2000


def _activity(rng: np.random.Generator, steps: np.ndarray) -> np.ndarray:
    """Each second's trading intensity, mean about 1: a market's volume comes in bursts — busy and quiet
    minutes that cluster (a lognormal AR(1) per minute) and more trading where the price moves (each minute's
    absolute return against the day's average). Plain Poisson volume never gave a minute 1.5x its 20-minute
    average, so a volume filter such as VWAP breakout's never passed on the paper broker. Drawn after the
    prices, so a seed's prices are what they were."""
    n = len(steps)
    minutes = -(-n // 60)
    shocks = rng.normal(0.0, 1.0, minutes)
    level = np.empty(minutes)
    level[0] = shocks[0]
    for i in range(1, minutes):
        level[i] = 0.6 * level[i - 1] + 0.8 * shocks[i]  # stationary: standard deviation 1
    busy = np.exp(0.5 * level - 0.125)  # lognormal, mean 1
    moved = np.abs(np.add.reduceat(steps, np.arange(0, n, 60)))
    moving = 0.5 + 0.5 * moved / max(float(moved.mean()), 1e-12)
    return np.repeat(busy * moving, 60)[:n]


def _seed(*parts) -> int:
    return int.from_bytes(hashlib.sha256("|".join(map(str, parts)).encode()).digest()[:8], "big")


def _ncdf(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def black_scholes(spot: float, strike: float, t: float, vol: float, kind: str, r: float = RATE) -> float:
    if t <= 0 or vol <= 0:
        return max(0.0, spot - strike) if kind == "CE" else max(0.0, strike - spot)
    sq = vol * math.sqrt(t)
    d1 = (math.log(spot / strike) + (r + 0.5 * vol * vol) * t) / sq
    d2 = d1 - sq
    if kind == "CE":
        return spot * _ncdf(d1) - strike * math.exp(-r * t) * _ncdf(d2)
    return strike * math.exp(-r * t) * _ncdf(-d2) - spot * _ncdf(-d1)


def round_tick(price: float, tick: float) -> float:
    if tick <= 0:
        return round(price, 2)
    return round(round(price / tick) * tick, 2)


@dataclass
class DayPath:
    prices: np.ndarray  # per session second, len SESSION_SECONDS + 1
    high: np.ndarray  # running max
    low: np.ndarray  # running min
    volume: np.ndarray  # cumulative volume
    turnover: np.ndarray  # cumulative price*volume (for the average traded price)
    prev_close: float


@dataclass
class Quote:
    last_price: float
    open: float
    high: float
    low: float
    close: float  # previous session close
    volume: int
    average_price: float
    last_quantity: int
    buy_quantity: int
    sell_quantity: int
    oi: int
    oi_day_high: int
    oi_day_low: int
    depth_buy: list[tuple[float, int, int]]  # (price, quantity, orders)
    depth_sell: list[tuple[float, int, int]]
    timestamp: datetime
    lower_circuit: float
    upper_circuit: float


class Market:
    def __init__(self, universe: Universe, clock: SimClock, seed: int = 42, replay=None) -> None:
        self.universe = universe
        self.replay = replay  # kite_sim.replay.Replay: these underlyings follow a CSV, not the generator
        self.clock = clock
        self.seed = seed
        self._closes: dict[str, tuple[date, np.ndarray]] = {}
        self._paths: OrderedDict[tuple[str, date], DayPath] = OrderedDict()
        self._anchor = clock.add_trading_days(clock.start_date, -HISTORY_DAYS)
        self.overrides: dict[str, float] = {}  # admin: pin an underlying's price (tests, demos)

    # ---- daily closes and intraday paths ------------------------------------------------------

    def _day_index(self, d: date) -> int:
        cur = self._anchor
        # trading days between anchor and d (weekdays minus holidays), computed arithmetically
        weeks, rem = divmod((d - cur).days, 7)
        n = weeks * 5 + sum(1 for k in range(1, rem + 1) if (cur + timedelta(days=k)).weekday() < 5)
        return n - sum(1 for h in self.clock.calendar.holidays if cur < h <= d)

    def _daily(self, u: str) -> np.ndarray:
        if u not in self._closes:
            rng = np.random.default_rng(_seed(self.seed, u, "daily"))
            vol = self.universe.vol[u] / math.sqrt(252)
            n = HISTORY_DAYS + 400
            regime = np.repeat(rng.normal(0, vol * 0.25, n // 20 + 1), 20)[:n]  # trend regimes
            rets = rng.normal(0, vol, n) + regime
            log_path = np.cumsum(rets)
            log_path -= log_path[HISTORY_DAYS]  # the sim's first day closes near the base price
            self._closes[u] = (self._anchor, self.universe.base[u] * np.exp(log_path))
        return self._closes[u][1]

    def day_path(self, u: str, d: date) -> DayPath:
        key = (u, d)
        path = self._paths.get(key)
        if path is not None:
            self._paths.move_to_end(key)
            return path
        if self.replay is not None and u in self.replay.symbols:
            path = self._replayed(u, d)
        else:
            path = self._generated(u, d)
        self._paths[key] = path
        if len(self._paths) > 256:
            self._paths.popitem(last=False)
        return path

    def _replayed(self, u: str, d: date) -> DayPath:
        prices, vol_steps, prev = self.replay.series(u, d)
        volume = np.concatenate(([0], np.cumsum(vol_steps)))
        turnover = np.concatenate(([0.0], np.cumsum(vol_steps * prices[1:])))
        return DayPath(prices, np.maximum.accumulate(prices), np.minimum.accumulate(prices), volume, turnover, prev)

    def _generated(self, u: str, d: date) -> DayPath:
        closes = self._daily(u)
        i = self._day_index(d)
        close, prev = float(closes[i]), float(closes[i - 1])
        rng = np.random.default_rng(_seed(self.seed, u, d.isoformat()))
        n = SESSION_SECONDS
        sigma = self.universe.vol[u] / math.sqrt(252 * n) * 1.6
        open_ = prev * math.exp(rng.normal(0, self.universe.vol[u] / math.sqrt(252) * 0.3))
        steps = rng.normal(0, sigma, n)
        jumps = rng.random(n) < 3.0 / n
        steps[jumps] += rng.normal(0, sigma * 40, int(jumps.sum()))
        walk = np.concatenate(([0.0], np.cumsum(steps)))
        frac = np.linspace(0.0, 1.0, n + 1)
        bridge = walk - frac * walk[-1] + frac * math.log(close / open_)
        prices = open_ * np.exp(bridge)
        base_rate = max(1.0, 2e8 / self.universe.base[u] / n)
        u_shape = 1.0 + 1.5 * ((frac - 0.5) * 2) ** 2  # more volume at the open and the close
        vol_steps = rng.poisson(base_rate * u_shape[1:] * _activity(rng, steps))
        volume = np.concatenate(([0], np.cumsum(vol_steps)))
        turnover = np.concatenate(([0.0], np.cumsum(vol_steps * prices[1:])))
        return DayPath(prices, np.maximum.accumulate(prices), np.minimum.accumulate(prices), volume, turnover, prev)

    def roll_universe(self, day: date) -> int:
        """List the contracts of every trading day up to ``day``, one day at a time (so a restarted sim,
        rolling from its start date, assigns the same tokens), strikes around the previous close."""
        added = 0
        d = self.universe.today
        while d < day:
            prev, d = d, self.clock.add_trading_days(d, 1)
            spots = {u: float(self.day_path(u, prev).prices[-1]) for u in self.universe.underlyings}  # not pins
            added += self.universe.extend(d, spots)
        return added

    # ---- prices -------------------------------------------------------------------------------

    def spot(self, u: str, d: date | None = None, sec: float | None = None) -> float:
        if u in self.overrides:
            return self.overrides[u]
        if d is None:
            d, sec = self.clock.now()
        return float(self.day_path(u, d).prices[min(int(sec), SESSION_SECONDS)])

    def years_to_expiry(self, inst: Instrument, at: datetime) -> float:
        expiry = datetime(inst.expiry.year, inst.expiry.month, inst.expiry.day, 15, 30, tzinfo=IST)
        return max(0.0, (expiry - at).total_seconds()) / YEAR_SECONDS

    def iv(self, inst: Instrument, spot: float, t: float) -> float:
        """The smile: higher vol away from the money, puts a little richer than calls."""
        base = self.universe.vol[inst.underlying] * 1.05
        m = math.log(inst.strike / (spot * math.exp(RATE * t))) if spot > 0 else 0.0
        return max(0.05, base * (1 + 3.0 * m * m - 0.6 * m))

    def price(self, inst: Instrument, d: date | None = None, sec: float | None = None) -> float:
        if d is None:
            d, sec = self.clock.now()
        spot = self.spot(inst.underlying, d, sec)
        if inst.instrument_type == "EQ":
            return round_tick(spot, inst.tick_size)
        at = session_open(d) + timedelta(seconds=sec)
        t = self.years_to_expiry(inst, at)
        if inst.instrument_type == "FUT":
            return round_tick(spot * math.exp(RATE * t), inst.tick_size)
        value = black_scholes(spot, inst.strike, t, self.iv(inst, spot, t), inst.instrument_type)
        return max(inst.tick_size, round_tick(value, inst.tick_size))

    def quote(self, inst: Instrument) -> Quote:
        d, sec = self.clock.now()
        s = min(int(sec), SESSION_SECONDS)
        path = self.day_path(inst.underlying, d)
        ltp = self.price(inst, d, sec)
        if inst.instrument_type == "EQ" and inst.underlying not in self.overrides:
            o, h, lo = path.prices[0], path.high[s], path.low[s]
            prev = path.prev_close
            vol = int(path.volume[s]) if inst.tradable else 0
            atp = float(path.turnover[s] / path.volume[s]) if path.volume[s] else ltp
        else:  # derivatives: day range from the spot's range through the pricing model
            o = self.price(inst, d, 0)
            a = self.price(inst, d, int(np.argmax(path.prices[: s + 1])))
            b = self.price(inst, d, int(np.argmin(path.prices[: s + 1])))
            h, lo = max(o, a, b, ltp), min(o, a, b, ltp)
            prev_day = self.clock.add_trading_days(d, -1)
            prev = self.price(inst, prev_day, SESSION_SECONDS) if inst.expiry and inst.expiry >= prev_day else o
            vol = int(path.volume[s] * (3 if inst.instrument_type == "FUT" else 40) / max(1, inst.lot_size))
            atp = (o + ltp) / 2
        tick = inst.tick_size or 0.05
        rng = np.random.default_rng(_seed(self.seed, inst.instrument_token, s))
        lots = max(1, inst.lot_size)
        u = self.universe.underlyings.get(inst.underlying)
        away = abs(inst.strike - self.spot(inst.underlying, d, sec)) / u.step if u and inst.strike else 0.0
        buy, sell = book.depth(inst, ltp, tick, rng, away)
        oi = self.open_interest(inst, ltp) if inst.instrument_type in ("FUT", "CE", "PE") else 0
        band_pct = fills.band_pct(inst.instrument_type)
        return Quote(ltp, round_tick(float(o), tick), round_tick(float(h), tick), round_tick(float(lo), tick),
                     round_tick(float(prev), tick), vol, round_tick(float(atp), tick), int(rng.integers(1, 5)) * lots,
                     sum(q for _, q, _ in buy) * 7, sum(q for _, q, _ in sell) * 7, oi, int(oi * 1.03), int(oi * 0.95),
                     buy, sell, session_open(d) + timedelta(seconds=sec),
                     *self._circuits(inst, prev, band_pct, tick, lo, h))

    @staticmethod
    def _circuits(inst: Instrument, prev: float, band_pct: float, tick: float, low: float,
                  high: float) -> tuple[float, float]:
        """(lower, upper) circuit limits around the previous close, never below one tick, flexed (as the
        exchange flexes an option's operating range) so the day's own prices are always inside: an option
        decaying through its band once traded at 4.70 while an order at 4.45 was refused below 8.20."""
        if not inst.tradable:
            return 0.0, 0.0
        t = int(round(tick * 100))
        lower, upper = fills.circuit_band(int(round(prev * 100)), band_pct, t)
        if round(low * 100) <= lower:  # the day reached its lower band: it flexes below the day's low
            lower = fills.circuit_band(int(round(low * 100)), band_pct, t)[0]
        if round(high * 100) >= upper:
            upper = fills.circuit_band(int(round(high * 100)), band_pct, t)[1]
        return max(t, lower) / 100, max(t, upper) / 100

    def open_interest(self, inst: Instrument, price: float) -> int:
        u = self.universe.underlyings.get(inst.underlying)
        step = u.step if u else 50
        spot = self.spot(inst.underlying)
        dist = (inst.strike - spot) / (step * 6) if inst.strike else 0.0
        bias = 1.3 if (inst.instrument_type == "PE") == (inst.strike < spot) else 1.0  # OTM writing
        base = 60_000 if inst.instrument_type != "FUT" else 150_000
        return int(base * bias * math.exp(-dist * dist) * (1 + (_seed(inst.instrument_token) % 100) / 400)) * max(
            1, inst.lot_size)

    # ---- historical candles -------------------------------------------------------------------

    def candles(self, inst: Instrument, start: datetime, end: datetime, interval_s: int, with_oi: bool) -> list[list]:
        """OHLCV candles from the same paths as live ticks; the current day stops at the sim clock."""
        out: list[list] = []
        today, now_sec = self.clock.now()
        d = start.astimezone(IST).date()
        last = min(end.astimezone(IST).date(), today)
        while d <= last:
            if self.clock.is_trading_day(d):
                limit = int(now_sec) if d == today else SESSION_SECONDS
                step = interval_s if interval_s < 86400 else SESSION_SECONDS
                for b0 in range(0, limit, step):
                    ts = session_open(d) + timedelta(seconds=b0)
                    if not (start <= ts <= end) or (d == today and b0 + step > limit and interval_s < 86400):
                        continue
                    out.append(self._candle(inst, d, b0, min(b0 + step, SESSION_SECONDS), ts, with_oi))
            d += timedelta(days=1)
        return out

    def _candle(self, inst: Instrument, d: date, s0: int, s1: int, ts: datetime, with_oi: bool) -> list:
        path = self.day_path(inst.underlying, d)
        seg = path.prices[s0 : s1 + 1]
        if inst.instrument_type == "EQ":
            tick = inst.tick_size
            o, h, lo, c = (round_tick(float(x), tick) for x in (seg[0], seg.max(), seg.min(), seg[-1]))
            vol = int(path.volume[s1] - path.volume[s0]) if inst.tradable else 0
        else:
            pts = [self.price(inst, d, s0 + int(k)) for k in (0, int(np.argmax(seg)), int(np.argmin(seg)), len(seg) - 1)]
            o, c = pts[0], pts[3]
            h, lo = max(pts), min(pts)
            vol = int((path.volume[s1] - path.volume[s0]) * 3 / max(1, inst.lot_size))
        row = [ts.strftime("%Y-%m-%dT%H:%M:%S+0530"), o, h, lo, c, vol]
        if with_oi:
            row.append(self.open_interest(inst, c) if inst.instrument_type in ("FUT", "CE", "PE") else 0)
        return row
