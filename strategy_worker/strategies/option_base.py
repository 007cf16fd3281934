"""What the option strategies share: the live chain of the underlying, leg building, and the life
cycle of one structure, driven by what the broker says is held:

* **flat, nothing in flight** — inside the entry window the subclass's ``enter(bar)`` may open a
  structure (one SignalGroup; its legs are placed atomically by the execution worker);
* **in flight** — the entry or exit group has no final outcome yet: wait;
* **held** (any leg has a position, from fills) — ``manage`` exits on the net premium's target or
  stop, at the time exit, or on expiry day, closing exactly what is held.

A refused or rolled-back entry leaves the book flat, so no exit is ever sent for legs that were
never bought (the bug that once left a naked short put)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from shared.ist import IST
from shared.kite.models import Instrument
from shared.messages import (
    Bar,
    Exchange,
    Leg,
    OrderType,
    Product,
    StrategyOutcome,
    TransactionType,
    to_paise,
)
from shared.options.chain import OptionChain, Strike, nearest_chain
from strategy_worker.strategies.base import BaseStrategy

NEAR_STRIKES = 12  # strikes each side of ATM whose ticks a strategy follows
PLANNED_MARGIN = 2  # strikes each side of a strike a strategy plans to trade whose ticks it follows too
EXPIRY_DAY_EXIT = 14 * 60  # minutes after midnight IST: a structure expiring today is closed from here


class LastPrices:
    """Last traded prices as a read-only mapping over the worker's last ticks (no copy per bar)."""

    __slots__ = ("ticks",)

    def __init__(self, ticks) -> None:
        self.ticks = ticks

    def get(self, token: int, default: float | None = None) -> float | None:
        t = self.ticks.get(token)
        return t.last_price if t is not None else default

    def __contains__(self, token: int) -> bool:
        return token in self.ticks

    def __getitem__(self, token: int) -> float:
        return self.ticks[token].last_price


class Market(NamedTuple):
    """What an option strategy prices an entry from."""
    chain: OptionChain
    spot: float
    now: float
    prices: LastPrices
    forward: float  # the future implied by the chain's put-call parity around the spot


class OptionStrategy(BaseStrategy):
    kind = "options"
    structure = ""
    # exchange seconds before a structure whose entry was refused (margin, risk limits) or rolled back is tried
    # again: flat inside the entry window it would otherwise be sent on every bar — a refusal a bar in the
    # journal, and a rolled-back entry's wings bought and sold back (charges and slippage) a bar at a time
    RETRY_PAUSE = 15 * 60

    # ---- overridables -------------------------------------------------------------------------

    def observe(self, bar: Bar) -> None:
        """Every bar of the underlying, whatever the structure's state (e.g. a trend filter)."""

    def enter(self, bar: Bar) -> list:
        """Flat, nothing in flight, inside the entry window: open a structure or return []."""
        return []

    def planned(self, market: Market) -> list[Strike]:
        """The strikes an entry would trade in ``market`` (followed, with ``PLANNED_MARGIN`` around each, beside
        the strikes near the money: a 0.2-delta short of a monthly BANKNIFTY chain is some 24 strikes out, and
        an unfollowed strike has no price — its delta guessed, its market order refused PRICE_UNKNOWN)."""
        return []

    # ---- the life cycle -----------------------------------------------------------------------

    def on_bar(self, bar: Bar) -> list:
        self.observe(bar)
        if self.book.flights:
            return []
        if self.position:
            return self.manage(bar)
        self._forget_structure()
        if bar.start < self.state.get("retry_at", 0):
            return []
        self.state.pop("retry_at", None)
        return self.enter(bar) if self.in_entry_window(bar) else []

    def on_refused(self, outcome: StrategyOutcome) -> list:
        self._pause_entries()
        return []

    def on_cancelled(self, outcome: StrategyOutcome) -> list:
        if outcome.kind == "rolled_back":
            self._pause_entries()
        return []

    def _pause_entries(self) -> None:
        if not self.position:
            self.state["retry_at"] = self.last_bar + self.RETRY_PAUSE

    def on_outcome(self, outcome: StrategyOutcome) -> list:
        if not self.position and not self.book.flights:
            self._forget_structure()  # flat again: closed, refused or rolled back
        return []

    def _forget_structure(self) -> None:
        for key in ("legs", "entry_premium", "structure"):
            self.state.pop(key, None)

    def on_fill(self, outcome: StrategyOutcome) -> list:
        """Once every leg of the entry is held, the entry premium is what was really paid."""
        legs = self.state.get("legs") or []
        if outcome.order_kind == "entry" and legs and all(self.position.get(t) for t in legs):
            self.state["entry_premium"] = sum(-self.position[t] * self.book.average.get(t, 0) / 100 for t in legs)
        return []

    def manage(self, bar: Bar) -> list:
        p = self.params
        now = datetime.fromtimestamp(bar.start, IST)
        today = now.date().isoformat()
        expiry_day = any(i.expiry and i.expiry.isoformat() == today for i in self._held_instruments())
        if now.hour * 60 + now.minute >= p.exit_minute or (expiry_day and now.hour * 60 + now.minute >= EXPIRY_DAY_EXIT):
            return [self.close_structure("time exit before the close" if not expiry_day else "expiry-day exit")]
        entry, current = self.state.get("entry_premium"), self.held_premium()
        if current is None:
            return []
        if entry is None:  # entered before every leg had a price: the first full pricing is the entry
            self.state["entry_premium"] = current
            return []
        pnl = entry - current  # credit structures gain as premium decays; debit ones as it rises
        basis = abs(entry) or 1.0
        if pnl >= p.target_pct * basis:
            return [self.close_structure(f"target: captured {pnl / basis:.0%} of the entry premium")]
        if -pnl >= p.stop_pct * basis:
            return [self.close_structure(f"stop: loss of {-pnl / basis:.0%} of the entry premium")]
        return []

    def in_entry_window(self, bar: Bar) -> bool:
        """From ``entry_after_minute`` to half an hour before the time exit — and on the chain's
        expiry day to half an hour before the expiry-day exit (entering then would be closed a bar
        later, over and over)."""
        now = datetime.fromtimestamp(bar.start, IST)
        minute = now.hour * 60 + now.minute
        if not self.params.entry_after_minute <= minute < self.params.exit_minute - 30:
            return False
        chain = self.chain()
        return not (chain is not None and chain.expiry == now.date() and minute >= EXPIRY_DAY_EXIT - 30)

    # ---- market -------------------------------------------------------------------------------

    def chain(self) -> OptionChain | None:
        """The nearest live chain, rebuilt only when the day or the instrument list changes (a
        scan of every instrument per bar would be O(instruments))."""
        name = self.ctx.underlying_name(self.token)
        today = datetime.fromtimestamp(self.ctx.clock(), IST).date()
        key = (id(self.ctx.instruments), len(self.ctx.instruments), name, today)
        cached = getattr(self, "_chain", None)
        if cached is None or cached[0] != key:
            cached = self._chain = (key, nearest_chain(self.ctx.instruments, name, today,
                                                       getattr(self.params, "min_days_to_expiry", 0)))
        return cached[1]

    def spot(self) -> float | None:
        return self.ctx.ltp(self.token)

    def market(self, bar: Bar) -> Market | None:
        """The nearest chain, the spot (the bar's close before any tick), now, the last prices and the
        implied future; None without a live chain."""
        chain = self.chain()
        if chain is None:
            return None
        spot, now, prices = self.spot() or bar.close, self.ctx.clock(), self.prices()
        return Market(chain, spot, now, prices, chain.implied_future(spot, prices, now))

    def prices(self) -> LastPrices:
        return LastPrices(self.ctx.last_ticks)

    def required_tokens(self) -> set[int]:
        tokens = {self.token} | self.traded_tokens()
        chain, spot = self.chain(), self.spot()
        if chain and spot:
            atm = chain.strikes.index(chain.atm(spot))
            strikes = chain.strikes[max(0, atm - NEAR_STRIKES):atm + NEAR_STRIKES + 1]
            now, prices = self.ctx.clock(), self.prices()
            market = Market(chain, spot, now, prices, chain.implied_future(spot, prices, now))
            for s in self.planned(market):
                strikes += [chain.step(s, k) for k in range(-PLANNED_MARGIN, PLANNED_MARGIN + 1)]
            for s in strikes:
                tokens |= {i.instrument_token for i in (s.ce, s.pe) if i}
        return tokens

    def traded_tokens(self) -> set[int]:
        out = set(self.book.position) | set(self.state.get("legs") or ())
        for f in self.book.flights.values():
            out.update(f.want)
        return out

    # ---- structures ---------------------------------------------------------------------------

    def leg(self, inst: Instrument, side: TransactionType, quantity_lots: int, hedge: bool = False,
            units: int | None = None) -> Leg:
        """A leg of ``quantity_lots`` lots (or exactly ``units``) of an option or future."""
        return Leg(exchange=Exchange(inst.exchange), tradingsymbol=inst.tradingsymbol,
                   instrument_token=inst.instrument_token, transaction_type=side,
                   quantity=units if units is not None else quantity_lots * inst.lot_size, product=Product.NRML,
                   order_type=OrderType.MARKET, lot_size=inst.lot_size, is_hedge=hedge,
                   option_type=inst.instrument_type, strike=to_paise(inst.strike),
                   expiry=inst.expiry.isoformat() if inst.expiry else "")

    def premium(self, positions: dict[int, int]) -> float | None:
        """Credit received (positive) or debit paid (negative) for ``positions`` (token -> signed
        quantity) at current prices; None until every leg has a price."""
        total = 0.0
        for token, qty in positions.items():
            px = self.ctx.ltp(token)
            if px is None:
                return None
            total -= px * qty
        return total

    def held_premium(self) -> float | None:
        return self.premium(dict(self.position))

    def entry_group(self, underlying: str, legs: list[Leg], confidence: float, reason: str,
                    metadata: dict[str, Any], structure: str | None = None):
        """The entry SignalGroup of a structure. Its stop-loss and target are the net-premium
        levels (rupees x quantity, credit positive, in paise) at which ``manage`` exits; unknown
        (None) until every leg has a price. The structure is open only once fills say so."""
        premium = self.premium({x.instrument_token: x.quantity if x.transaction_type is TransactionType.BUY
                                else -x.quantity for x in legs})
        stop = target = None
        if premium is not None:
            basis = abs(premium) or 1.0
            stop = to_paise(round(premium + self.params.stop_pct * basis, 2))
            target = to_paise(round(premium - self.params.target_pct * basis, 2))
        chain = self.chain()
        oi = self.ctx.oi.get((underlying, chain.expiry)) if chain else None
        if oi is not None and oi.total_ce:  # the chain's positioning when the structure was entered
            metadata = {**metadata, "pcr": round(oi.pcr, 4), "max_pain": oi.max_pain()}
        name = structure or self.structure
        group = self.group(name, underlying, legs, "entry", confidence, reason, stop_loss=stop, target=target,
                           metadata={**metadata, "net_premium": premium})
        if group is not None:
            self.state.update(legs=[x.instrument_token for x in legs], entry_premium=premium, structure=name)
        return group

    def close_structure(self, reason: str, confidence: float = 0.9):
        """An exit group for exactly what is held: short legs bought back first, then longs sold."""
        held = sorted(((t, q) for t, q in self.position.items() if q), key=lambda tq: tq[1])
        legs = []
        for token, qty in held:
            inst = self.ctx.by_token.get(token)
            if inst is None:
                continue
            side = TransactionType.SELL if qty > 0 else TransactionType.BUY
            legs.append(self.leg(inst, side, 0, hedge=qty > 0, units=abs(qty)))
        if not legs:
            return None
        return self.group(self.state.get("structure", self.structure), self.ctx.underlying_name(self.token), legs,
                          "exit", confidence, reason)

    def _held_instruments(self) -> list[Instrument]:
        return [i for i in (self.ctx.by_token.get(t) for t in self.position) if i is not None]
