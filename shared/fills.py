"""The fill model: when an order fills and at what price, in integer paise. One library for kite_sim's
matching (ticks against its simulated depth) and the backtest engine (bars).

Rules (the broker's, as kite_sim implements them):

- **MARKET** orders carry market protection: the OMS turns them into a LIMIT at the last price ± the
  protection (``protection_price``; 2 % when the protection is automatic, -1), rounded through to a tick and
  at least one tick through, so a cheap option's "market" order can still cross the spread.
- **SL / SL-M** wait for the trigger: a buy stop triggers when the price reaches the trigger or above,
  a sell stop at or below (``trigger_hit``). SL-M then becomes a LIMIT 2 % through the price that
  triggered it; SL keeps its own limit.
- **LIMIT** fills at the limit or better (``limit_ok``), walking the depth level by level, in whole lots
  (``walk_depth``); what the book cannot take stays open.
- **Circuit bands**: a limit or trigger outside the day's band is refused (``circuit_band``);
  **lot size and freeze quantity** are checked before anything (``quantity_error``).

On bars (``BarFills``, the backtest) the price path inside a bar is synthesised by one documented rule —
open → low → high → close when the bar closes at or above its open, open → high → low → close otherwise
(kite_sim's ``--replay`` draws the same path through a candle) — and an order resting at the bar's open
is tested against that path in order:

- a MARKET order placed on a bar's close fills at the **next bar's open ± ``slippage_ticks``** ticks
  (kite_sim's depth quotes the best offer one tick above the last price, so the default, 1, is the spread
  a market order crosses there); never outside the protection limit or the circuit band;
- a LIMIT fills at its limit when the path trades through it by the spread (``slippage_ticks``: the best
  opposite quote sits that far from the last price), or at the open's quote when the bar **gaps through** it;
- a stop triggers when the path reaches the trigger and then crosses the spread like a market order (an SL
  no further than its limit); a bar that **gaps through** the trigger triggers at its open, so the stop
  fills at the open ± slippage (SL-M), or at its limit if that is reached later in the bar (SL) — never at
  the trigger price the market skipped;
- of two orders touched in the same bar (a stop-loss and a target), the one the path reaches first fills.

``PARITY_TOLERANCE_TICKS``: a MARKET fill in the backtest and the same order in kite_sim replaying the same
candles differ by at most this many ticks plus the price move during the order's round trip to the broker.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

AUTO_PROTECTION_PCT = 2.0  # market_protection = -1: the broker's automatic protection
SLM_LIMIT_PCT = 2.0  # an SL-M becomes a LIMIT this far through the triggering price
PARITY_TOLERANCE_TICKS = 2


def round_tick(paise: float, tick: int) -> int:
    """To the nearest tick (half away from zero is not needed for positive prices)."""
    tick = tick or 5
    return int(round(paise / tick)) * tick


def through(side: str, last_paise: int, pct: float, tick: int) -> int:
    """A limit ``pct`` % through the last price, on a tick on the far side (up for a buy, down for a sell) and
    at least one tick through: rounding to the nearest tick would leave a cheap contract's "market" order at
    its last price (2 % of ₹0.60 is under a tick), unable to cross the spread."""
    tick = tick or 5
    if side == "BUY":
        return max(math.ceil(last_paise * (1 + pct / 100) / tick - 1e-6) * tick, last_paise + tick)
    return max(tick, min(math.floor(last_paise * (1 - pct / 100) / tick + 1e-6) * tick, last_paise - tick))


def protection_price(side: str, last_paise: int, protection_pct: float, tick: int) -> int:
    """The LIMIT price a protected MARKET order becomes (``protection_pct`` < 0: automatic)."""
    return through(side, last_paise, AUTO_PROTECTION_PCT if protection_pct < 0 else protection_pct, tick)


def slm_limit(side: str, triggered_at: int, tick: int) -> int:
    return through(side, triggered_at, SLM_LIMIT_PCT, tick)


def trigger_hit(side: str, trigger: int, price: int) -> bool:
    return price >= trigger if side == "BUY" else price <= trigger


def limit_ok(side: str, limit: int, price: int) -> bool:
    return price <= limit if side == "BUY" else price >= limit


def walk_depth(side: str, limit: int, remaining: int, levels: Iterable[tuple[int, int]],
               lot_size: int = 1) -> list[tuple[int, int]]:
    """(quantity, price) fills of ``remaining`` against the opposite side's depth levels (price, quantity),
    best first, stopping at the limit; whole lots only."""
    out: list[tuple[int, int]] = []
    left = remaining
    for price, qty in levels:
        if not limit_ok(side, limit, price):
            break
        take = min(qty, left)
        if lot_size > 1:
            take -= take % lot_size
        if take <= 0:
            break
        out.append((take, price))
        left -= take
        if not left:
            break
    return out


def band_pct(instrument_type: str) -> float:
    """The circuit band around the previous close, percent: 20 % for a stock, 50 % for a derivative (kite_sim's
    bands, and the backtest's)."""
    return 20.0 if instrument_type == "EQ" else 50.0


def circuit_band(prev_close: int, pct: float, tick: int) -> tuple[int, int]:
    """(lower, upper) circuit limits around the previous close."""
    return round_tick(prev_close * (1 - pct / 100), tick), round_tick(prev_close * (1 + pct / 100), tick)


def quantity_error(quantity: int, lot_size: int, freeze_quantity: int) -> str | None:
    """Kite's refusal for a quantity, or None when it is acceptable."""
    if quantity <= 0:
        return "Invalid `quantity`."
    if lot_size > 1 and quantity % lot_size:
        return f"Quantity should be a multiple of lot size ({lot_size})."
    if freeze_quantity and quantity > freeze_quantity:
        return f"Quantity exceeds the freeze limit of {freeze_quantity}. Use autoslice or split."
    return None


def bar_path(open_: int, high: int, low: int, close: int) -> tuple[int, int, int, int]:
    """The synthesised path through a bar: O → L → H → C on a rising (or flat) bar, O → H → L → C else."""
    return (open_, low, high, close) if close >= open_ else (open_, high, low, close)


@dataclass(frozen=True)
class BarFills:
    """Fills of orders resting through one bar (prices in paise)."""

    slippage_ticks: int = 1

    def market(self, side: str, price: int, tick: int, protection_pct: float = -1.0,
               band: tuple[int, int] | None = None) -> int:
        """A MARKET order filled at ``price`` (the next price seen) crossing the spread."""
        slip = self.slippage_ticks * tick
        fill = price + slip if side == "BUY" else price - slip
        bound = protection_price(side, price, protection_pct, tick)
        fill = min(fill, bound) if side == "BUY" else max(fill, bound)
        if band is not None:
            fill = min(max(fill, band[0]), band[1])
        return fill

    def limit(self, side: str, limit: int, path: tuple[int, ...], tick: int) -> tuple[int, int] | None:
        """(index in the path, fill price) where a resting LIMIT fills, or None. The price must trade
        through the limit by the spread (``slippage_ticks``): the best opposite quote sits that far away."""
        through = limit - self.slippage_ticks * tick if side == "BUY" else limit + self.slippage_ticks * tick
        if limit_ok(side, through, path[0]):
            return 0, path[0] + (self.slippage_ticks * tick if side == "BUY" else -self.slippage_ticks * tick)
        for i in range(1, len(path)):
            if min(path[i - 1], path[i]) <= through <= max(path[i - 1], path[i]):
                return i, limit
        return None

    def stop(self, side: str, trigger: int, limit: int | None, path: tuple[int, ...], tick: int,
             band: tuple[int, int] | None = None) -> tuple[int, int] | None:
        """(index in the path, fill price) of a stop (``limit`` None: SL-M), or None. Triggered, it
        crosses the spread like a market order, within its own limit."""
        at = None
        if trigger_hit(side, trigger, path[0]):
            at, price = 0, path[0]  # gapped through the trigger: triggered at the open
        else:
            for i in range(1, len(path)):
                if min(path[i - 1], path[i]) <= trigger <= max(path[i - 1], path[i]):
                    at, price = i, trigger
                    break
        if at is None:
            return None
        fill = self.market(side, price, tick, band=band)
        if limit is None:
            return at, fill
        if limit_ok(side, limit, fill):
            return at, fill
        if limit_ok(side, limit, price):  # the spread would cross the limit: filled at the limit
            return at, limit
        rest = self.limit(side, limit, (price, *path[at + 1:]), tick)
        return None if rest is None else (at + rest[0], rest[1])
