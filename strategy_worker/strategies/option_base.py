"""What the four option strategies share: the live chain of the underlying, leg building, and the
life cycle of one open structure (entry window, exit on target / stop on the net premium, exit
before the close and on expiry day). Legs always travel together as one SignalGroup."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from shared.kite.models import Instrument
from shared.messages import Bar, Exchange, Leg, OrderType, Product, TransactionType, to_paise
from shared.options.chain import IST, OptionChain, nearest_chain
from strategy_worker.strategies.base import BaseStrategy

NEAR_STRIKES = 12  # strikes each side of ATM whose ticks a strategy follows


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


class OptionStrategy(BaseStrategy):
    kind = "options"
    structure = ""

    def chain(self) -> OptionChain | None:
        """The nearest live chain, rebuilt only when the day or the instrument list changes (a
        scan of every instrument per bar would be O(instruments))."""
        name = self.ctx.underlying_name(self.tokens[0]) if self.tokens else ""
        today = datetime.fromtimestamp(self.ctx.clock(), IST).date()
        key = (id(self.ctx.instruments), len(self.ctx.instruments), name, today)
        cached = getattr(self, "_chain", None)
        if cached is None or cached[0] != key:
            cached = self._chain = (key, nearest_chain(self.ctx.instruments, name, today,
                                                       getattr(self.params, "min_days_to_expiry", 0)))
        return cached[1]

    def spot(self) -> float | None:
        return self.ctx.ltp(self.tokens[0]) if self.tokens else None

    def prices(self) -> "LastPrices":
        return LastPrices(self.ctx.last_ticks)

    def required_tokens(self) -> set[int]:
        tokens = set(self.tokens)
        chain, spot = self.chain(), self.spot()
        if chain and spot:
            for k in range(-NEAR_STRIKES, NEAR_STRIKES + 1):
                s = chain.by_offset(spot, k)
                tokens |= {i.instrument_token for i in (s.ce, s.pe) if i}
        for leg in self.state.get("legs", []):
            tokens.add(leg["instrument_token"])
        return tokens

    def leg(self, inst: Instrument, side: TransactionType, lots: int, hedge: bool = False) -> Leg:
        return Leg(exchange=Exchange(inst.exchange), tradingsymbol=inst.tradingsymbol,
                   instrument_token=inst.instrument_token, transaction_type=side, quantity=lots * inst.lot_size,
                   product=Product.NRML, order_type=OrderType.MARKET, lot_size=inst.lot_size, is_hedge=hedge,
                   option_type=inst.instrument_type, strike=to_paise(inst.strike), expiry=inst.expiry.isoformat())

    # ---- the open structure -------------------------------------------------------------------

    def net_premium(self, legs: list[dict[str, Any]]) -> float | None:
        """Credit received (positive) or debit paid (negative) at current prices, per unit sum."""
        total = 0.0
        for leg in legs:
            px = self.ctx.ltp(leg["instrument_token"])
            if px is None:
                return None
            total += px * leg["quantity"] * (1 if leg["transaction_type"] == "SELL" else -1)
        return total

    def entry_group(self, underlying: str, legs: list[Leg], confidence: float, reason: str,
                    metadata: dict[str, Any], structure: str | None = None):
        """The entry SignalGroup of a structure, opened in the strategy's state. Its stop-loss and
        target are the net-premium levels (rupees x quantity, credit positive, in paise) at which
        ``manage`` exits; unknown (None) until every leg has a price."""
        premium = self.net_premium([{"instrument_token": x.instrument_token, "quantity": x.quantity,
                                     "transaction_type": x.transaction_type.value} for x in legs])
        stop = target = None
        if premium is not None:
            basis = abs(premium) or 1.0
            stop, target = to_paise(round(premium + self.params.stop_pct * basis, 2)), \
                to_paise(round(premium - self.params.target_pct * basis, 2))
        chain = self.chain()
        oi = self.ctx.oi.get((underlying, chain.expiry)) if chain else None
        if oi is not None and oi.total_ce:  # the chain's positioning when the structure was entered
            metadata = {**metadata, "pcr": round(oi.pcr, 4), "max_pain": oi.max_pain()}
        group = self.group(structure or self.structure, underlying, legs, "entry", confidence, reason,
                           stop_loss=stop, target=target, metadata={**metadata, "net_premium": premium})
        self.open_structure(legs, premium)
        self.state["structure"] = group.structure
        return group

    def open_structure(self, group_legs: list[Leg], premium: float | None) -> None:
        self.state["legs"] = [{"instrument_token": leg.instrument_token, "quantity": leg.quantity,
                               "transaction_type": leg.transaction_type.value, "tradingsymbol": leg.tradingsymbol,
                               "exchange": leg.exchange.value, "lot_size": leg.lot_size, "is_hedge": leg.is_hedge,
                               "option_type": leg.option_type, "strike": leg.strike, "expiry": leg.expiry}
                              for leg in group_legs]
        self.state["entry_premium"] = premium
        for leg in group_legs:
            sign = 1 if leg.transaction_type is TransactionType.BUY else -1
            self.position[leg.instrument_token] = self.position.get(leg.instrument_token, 0) + sign * leg.quantity

    def close_structure(self, reason: str, confidence: float = 0.9):
        legs = self.state.get("legs", [])
        exit_legs = [Leg(exchange=Exchange(leg["exchange"]), tradingsymbol=leg["tradingsymbol"],
                         instrument_token=leg["instrument_token"],
                         transaction_type=TransactionType.BUY if leg["transaction_type"] == "SELL" else TransactionType.SELL,
                         quantity=leg["quantity"], product=Product.NRML, order_type=OrderType.MARKET,
                         lot_size=leg["lot_size"], is_hedge=leg["is_hedge"], option_type=leg["option_type"],
                         strike=leg["strike"], expiry=leg["expiry"]) for leg in legs]
        for leg in legs:
            self.position.pop(leg["instrument_token"], None)
        self.state.pop("legs", None)
        self.state.pop("entry_premium", None)
        return self.group(self.state.pop("structure", self.structure), self.ctx.underlying_name(self.tokens[0]), exit_legs, "exit", confidence,
                          reason)

    def manage(self, bar: Bar) -> list:
        """Exit rules for an open structure; entries are the subclass's."""
        legs = self.state.get("legs")
        if not legs:
            return []
        p = self.params
        now = datetime.fromtimestamp(bar.start, IST)
        expiry_day = any(leg["expiry"] == now.date().isoformat() for leg in legs)
        if now.hour * 60 + now.minute >= p.exit_minute or (expiry_day and now.hour >= 14):
            return [self.close_structure("time exit before the close" if not expiry_day else "expiry-day exit")]
        entry, current = self.state.get("entry_premium"), self.net_premium(legs)
        if current is None:
            return []
        if entry is None:  # entered before every leg had ticked: the first full pricing is the entry
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
        now = datetime.fromtimestamp(bar.start, IST)
        minute = now.hour * 60 + now.minute
        return self.params.entry_after_minute <= minute < self.params.exit_minute - 30
