"""Positions: a local book per (strategy, instrument) built from fills, matched FIFO, in exact paise;
the broker's positions converted to kta's; and the cross-check between the two."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from shared.messages import Position, to_paise


@dataclass(slots=True)
class Lot:
    """An open piece of a position: signed quantity (+ long, - short) entered at ``price`` paise."""

    quantity: int
    price: int
    timestamp: str


@dataclass(frozen=True, slots=True)
class Closed:
    """One matched piece: an entry lot closed (fully or partly) by an opposite fill."""

    direction: str  # LONG or SHORT
    quantity: int
    entry_price: int
    exit_price: int
    entry_timestamp: str
    exit_timestamp: str

    @property
    def pnl(self) -> int:
        sign = 1 if self.direction == "LONG" else -1
        return sign * (self.exit_price - self.entry_price) * self.quantity


@dataclass(slots=True)
class FifoBook:
    """Open lots of one instrument; opposite fills close the oldest lots first, the rest (a
    reversal) opens a new lot the other way."""

    lots: deque[Lot] = field(default_factory=deque)
    realised: int = 0
    quantity: int = 0  # net open quantity, signed
    cost: int = 0  # sum of open lots' quantity × price, signed

    def fill(self, signed_quantity: int, price: int, timestamp: str = "") -> list[Closed]:
        closed: list[Closed] = []
        remaining = signed_quantity
        while remaining and self.lots and (self.lots[0].quantity > 0) != (remaining > 0):
            lot = self.lots[0]
            matched = min(abs(remaining), abs(lot.quantity))
            piece = Closed("LONG" if lot.quantity > 0 else "SHORT", matched, lot.price, price, lot.timestamp, timestamp)
            closed.append(piece)
            self.realised += piece.pnl
            step = matched if lot.quantity > 0 else -matched
            lot.quantity -= step
            self.quantity -= step
            self.cost -= step * lot.price
            remaining += step
            if lot.quantity == 0:
                self.lots.popleft()
        if remaining:
            self.lots.append(Lot(remaining, price, timestamp))
            self.quantity += remaining
            self.cost += remaining * price
        return closed

    def average_price(self) -> int:
        """cost / quantity to the nearest paisa, half to even (as ``round(Fraction(cost, quantity))``, in integers)."""
        if not self.quantity:
            return 0
        cost, quantity = (self.cost, self.quantity) if self.quantity > 0 else (-self.cost, -self.quantity)
        out, rest = divmod(cost, quantity)
        return out + 1 if 2 * rest > quantity or (2 * rest == quantity and out % 2) else out

    def unrealised(self, last_price: int) -> int:
        return self.quantity * last_price - self.cost


def signed(transaction_type: str, quantity: int) -> int:
    return quantity if str(transaction_type) == "BUY" else -quantity


@dataclass(slots=True)
class _Held:
    exchange: str
    tradingsymbol: str
    instrument_token: int
    product: str
    book: FifoBook = field(default_factory=FifoBook)
    last_price: int = 0
    buy_quantity: int = 0
    buy_value: int = 0
    sell_quantity: int = 0
    sell_value: int = 0
    strategy_id: str = ""


@dataclass(slots=True)
class _Net:
    """The account's position in one instrument and product, as the broker holds it: Kite nets a
    user's fills per instrument and product. ``long`` / ``short``: what the strategies long / short in
    it hold together — an exit is never refused, so any of them may close and leave the broker holding
    either side alone: ``at_risk`` is the larger side, the most the account can come to hold."""

    tradingsymbol: str
    long: int = 0
    short: int = 0
    last_price: int = 0

    @property
    def quantity(self) -> int:
        return self.long - self.short

    @property
    def exposure(self) -> int:
        return abs(self.quantity) * self.last_price

    @property
    def at_risk(self) -> int:
        return max(self.long, self.short) * self.last_price


class PositionTracker:
    """kta's own view of a user's positions, by strategy and symbol, from the fills it journaled.
    Totals (realised, unrealised, exposure) are kept up to date on each fill and mark, so reading
    them on every tick costs O(1). ``exposure`` is the account's as the broker holds it now (two
    strategies long and short the same instrument and product net out, as at Kite); ``at_risk`` is
    what it can come to by exits alone (the larger side: what the limits judge)."""

    def __init__(self) -> None:
        # (strategy, exchange, symbol, product slot): a strategy holds one position per instrument (risk refuses a
        # second product while it is open); the account's own ("", adopted from the broker) one per product, as Kite
        # keeps them — an MIS and an NRML lot placed in Kite are two positions, not one in the first one's product
        self._held: dict[tuple[str, str, str, str], _Held] = {}
        self._by_token: dict[int, list[_Held]] = {}
        self._nets: dict[tuple[str, str, str], _Net] = {}  # (exchange, symbol, product) -> the account's
        self._nets_by_token: dict[int, list[_Net]] = {}
        # kept on each fill and mark as the totals are: a signal's risk reads one entry of each (O(1), not a pass
        # over the user's positions a signal, issue #18)
        self._at_risk_by_symbol: dict[str, int] = {}
        self._exposure_by_strategy: dict[str, int] = {}
        self.realised = 0
        self.unrealised = 0
        self.exposure = 0
        self.at_risk = 0

    def _count(self, held: _Held, sign: int) -> None:
        self.realised += sign * held.book.realised
        self.unrealised += sign * held.book.unrealised(held.last_price)
        by_strategy = self._exposure_by_strategy
        by_strategy[held.strategy_id] = by_strategy.get(held.strategy_id, 0) + sign * abs(held.book.quantity) * held.last_price

    def _net(self, exchange: str, tradingsymbol: str, product: str, instrument_token: int) -> _Net:
        key = (str(exchange), tradingsymbol, str(product) or "MIS")
        net = self._nets.get(key)
        if net is None:
            net = self._nets[key] = _Net(tradingsymbol)
            self._nets_by_token.setdefault(instrument_token, []).append(net)
        return net

    def on_fill(self, *, strategy_id: str, exchange: str, tradingsymbol: str, transaction_type: str, quantity: int,
                price: int, instrument_token: int = 0, product: str = "", timestamp: str = "") -> list[Closed]:
        key = _key(strategy_id, exchange, tradingsymbol, product)
        held = self._held.get(key)
        if held is None:
            held = self._held[key] = _Held(str(exchange), tradingsymbol, instrument_token, str(product),
                                           strategy_id=strategy_id)
            self._by_token.setdefault(instrument_token, []).append(held)
        self._count(held, -1)
        if str(transaction_type) == "BUY":
            held.buy_quantity += quantity
            held.buy_value += quantity * price
        else:
            held.sell_quantity += quantity
            held.sell_value += quantity * price
        if not held.last_price:
            held.last_price = price
        before = held.book.quantity
        if not before and product:  # opened (again) from flat: in this fill's product
            held.product = str(product)
        closed = held.book.fill(signed(transaction_type, quantity), price, timestamp)
        self._count(held, +1)
        net = self._net(exchange, tradingsymbol, str(product) or held.product, instrument_token)
        self._count_net(net, -1)
        net.long += max(held.book.quantity, 0) - max(before, 0)  # the strategy's share of each side
        net.short += max(-held.book.quantity, 0) - max(-before, 0)
        net.last_price = net.last_price or price
        self._count_net(net, +1)
        return closed

    def _count_net(self, net: _Net, sign: int) -> None:
        self.exposure += sign * net.exposure
        self.at_risk += sign * net.at_risk
        by_symbol = self._at_risk_by_symbol
        by_symbol[net.tradingsymbol] = by_symbol.get(net.tradingsymbol, 0) + sign * net.at_risk

    def on_trade_row(self, row: dict[str, Any]) -> list[Closed]:
        """Apply a row of the journal's trades table."""
        return self.on_fill(strategy_id=row["strategy_id"], exchange=row["exchange"], tradingsymbol=row["tradingsymbol"],
                            transaction_type=row["transaction_type"], quantity=row["quantity"], price=row["price"],
                            instrument_token=row["instrument_token"], product=row["product"],
                            timestamp=row["fill_timestamp"])

    @classmethod
    def from_trades(cls, rows: Iterable[dict[str, Any]]) -> PositionTracker:
        tracker = cls()
        for row in rows:
            tracker.on_trade_row(row)
        return tracker

    def mark(self, instrument_token: int, last_price: int) -> None:
        """A new last price (paise) for an instrument, e.g. from a tick. O(holders of the token): the unrealised
        P&L moves by each holding's quantity times the price's move (integers: exact), the exposure by the nets'."""
        for held in self._by_token.get(instrument_token, ()):
            self.unrealised += held.book.quantity * (last_price - held.last_price)
            self._exposure_by_strategy[held.strategy_id] += abs(held.book.quantity) * (last_price - held.last_price)
            held.last_price = last_price
        for net in self._nets_by_token.get(instrument_token, ()):
            self._count_net(net, -1)
            net.last_price = last_price
            self._count_net(net, +1)

    def open_tokens(self) -> set[int]:
        return {h.instrument_token for h in self._held.values() if h.book.lots}

    def positions(self) -> list[Position]:
        return [
            Position(
                tradingsymbol=h.tradingsymbol, exchange=h.exchange, instrument_token=h.instrument_token,
                product=h.product, quantity=h.book.quantity, average_price=h.book.average_price(),
                last_price=h.last_price, value=h.sell_value - h.buy_value, realised=h.book.realised,
                unrealised=h.book.unrealised(h.last_price), pnl=h.book.realised + h.book.unrealised(h.last_price),
                m2m=h.book.realised + h.book.unrealised(h.last_price), buy_quantity=h.buy_quantity,
                buy_value=h.buy_value, sell_quantity=h.sell_quantity, sell_value=h.sell_value, strategy_id=strategy_id,
            )
            for (strategy_id, *_), h in sorted(self._held.items())
        ]

    def at_risk_by_symbol(self) -> dict[str, int]:
        """The account's exposure per symbol as the limits judge it (``_Net.at_risk``)."""
        return dict(self._at_risk_by_symbol)

    def at_risk_of(self, tradingsymbol: str) -> int:
        """``at_risk_by_symbol()[tradingsymbol]``, O(1)."""
        return self._at_risk_by_symbol.get(tradingsymbol, 0)

    def sides(self, exchange: str, tradingsymbol: str, product: str) -> tuple[int, int]:
        """(long, short): what the strategies long and short an instrument in one product hold together."""
        net = self._nets.get((str(exchange), tradingsymbol, str(product) or "MIS"))
        return (net.long, net.short) if net else (0, 0)

    def exposure_by_strategy(self) -> dict[str, int]:
        """Each strategy's own exposure: its positions, whatever the others hold."""
        return dict(self._exposure_by_strategy)

    def exposure_of(self, strategy_id: str) -> int:
        """``exposure_by_strategy()[strategy_id]``, O(1)."""
        return self._exposure_by_strategy.get(strategy_id, 0)

    def held(self, strategy_id: str, exchange: str, tradingsymbol: str, product: str = "") -> tuple[int, int]:
        """(signed quantity, average price) one strategy holds in an instrument; the account's own ("") in
        ``product``, or without it in every product together (the average then of the first held)."""
        if strategy_id or product:
            h = self._held.get(_key(strategy_id, exchange, tradingsymbol, product))
            return (h.book.quantity, h.book.average_price()) if h else (0, 0)
        mine = [h for (sid, x, symbol, _), h in self._held.items()
                if (sid, x, symbol) == ("", str(exchange), tradingsymbol) and h.book.quantity]
        return (sum(h.book.quantity for h in mine), mine[0].book.average_price()) if mine else (0, 0)

    def held_product(self, strategy_id: str, exchange: str, tradingsymbol: str) -> str:
        """The product one strategy's open position in an instrument is held in ("" when flat)."""
        h = self._held.get(_key(strategy_id, exchange, tradingsymbol, ""))
        return h.product if h and h.book.quantity else ""

    def net_quantity(self, exchange: str, tradingsymbol: str, product: str | None = None) -> int:
        """The account's net position in an instrument: in one product (what the broker holds as one
        position), or every product's together (None)."""
        want = None if product is None else str(product) or "MIS"
        return sum(net.quantity for (x, symbol, prod), net in self._nets.items()
                   if (x, symbol) == (str(exchange), tradingsymbol) and want in (None, prod))


def _key(strategy_id: str, exchange: str, tradingsymbol: str, product: str) -> tuple[str, str, str, str]:
    return strategy_id, str(exchange), tradingsymbol, "" if strategy_id else str(product) or "MIS"


def from_broker(positions: Iterable[Any]) -> list[Position]:
    """Kite's net positions (rupee floats, ``shared.kite.models.Position`` or dicts) to kta's (paise)."""
    out = []
    for p in positions:
        def get(key: str, default: Any = 0, p: Any = p) -> Any:
            return p.get(key, default) if isinstance(p, dict) else getattr(p, key, default)

        out.append(
            Position(
                tradingsymbol=get("tradingsymbol", ""), exchange=get("exchange", ""),
                instrument_token=int(get("instrument_token", 0)), product=get("product", "") or "MIS",
                quantity=int(get("quantity", 0)), overnight_quantity=int(get("overnight_quantity", 0)),
                multiplier=int(get("multiplier", 1) or 1),
                **{k: to_paise(get(k, 0) or 0) for k in (
                    "average_price", "last_price", "close_price", "value", "pnl", "m2m", "realised", "unrealised",
                    "buy_value", "sell_value")},
                buy_quantity=int(get("buy_quantity", 0)), sell_quantity=int(get("sell_quantity", 0)),
            )
        )
    return out


def net_by_symbol(positions: Iterable[Position]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    for p in positions:
        key = (p.exchange, p.tradingsymbol)
        out[key] = out.get(key, 0) + p.quantity
    return out
