"""What risk knows when a signal arrives, taken from the books — never from the signal's label.

For each instrument a signal touches, a ``Holding``: the signal's strategy's own position (from
journaled fills), what its working orders may still add or take away, the account's net position
and working orders, the last price (a MARKET order is valued at it) and the circuit band. Money in
paise; a price of 0 means unknown."""

from __future__ import annotations

from collections.abc import Iterable

from msgspec import Struct, field

from shared.messages import Signal, SignalGroup
from shared.trading.book import OrderBook
from shared.trading.order import Order
from shared.trading.positions import PositionTracker


class Holding(Struct, frozen=True, kw_only=True):
    key: str  # EXCHANGE:SYMBOL
    held: int = 0  # the signal's strategy's own position, signed
    held_product: str = ""  # the product that position is held in ("" when flat)
    product: str = ""  # the product the signal trades it in
    pending: int = 0  # signed quantity its working (non-protective) orders on it may still fill
    # what the strategies long / short the instrument in the signal's product hold together: the broker holds
    # their difference, and exits (never refused) can leave it holding either side alone
    account_long: int = 0
    account_short: int = 0
    account_pending: int = 0  # signed quantity every working (non-protective) order on it in that product may fill
    last_price: int = 0
    lot_size: int = 1
    lower: int = 0  # circuit band (0: unknown)
    upper: int = 0

    @property
    def account(self) -> int:
        """The account's net position in the instrument (the signal's product): what the broker holds."""
        return self.account_long - self.account_short

    def sides_after(self, change: int) -> tuple[int, int]:
        """(long, short) the strategies would hold together once this strategy's position moves by
        ``change`` and every working order fills (this strategy's at its position, the others' on
        the side they trade)."""
        others_long = self.account_long - max(self.held, 0)
        others_short = self.account_short - max(-self.held, 0)
        others_pending = self.account_pending - self.pending
        mine = self.held + self.pending + change
        return (others_long + max(others_pending, 0) + max(mine, 0),
                others_short + max(-others_pending, 0) + max(-mine, 0))

    @property
    def exitable(self) -> int:
        """How much of the strategy's position an exit may still close: what is held, less what its
        working exits already close."""
        reducing = -self.pending if self.held > 0 else self.pending if self.held < 0 else 0
        return max(0, abs(self.held) - max(0, reducing))


class RiskContext(Struct, kw_only=True):
    """The books for one signal. Greeks per underlying; ``greeks_priced`` is False when the signal
    trades options whose greeks could not be priced (the check fails closed)."""

    holdings: dict[str, Holding] = field(default_factory=dict)
    exposure: int = 0  # current total exposure, as the limits judge it (``PositionTracker.at_risk``)
    exposure_by_symbol: dict[str, int] = field(default_factory=dict)  # the same, keyed by tradingsymbol / underlying
    exposure_by_strategy: dict[str, int] = field(default_factory=dict)
    open_orders: int = 0
    net_delta: dict[str, float] = field(default_factory=dict)
    net_vega: dict[str, float] = field(default_factory=dict)
    underlying: str = ""  # of the signal; a SignalGroup's own underlying wins
    signal_delta: float = 0.0  # what the signal adds to its underlying's net delta
    signal_vega: float = 0.0
    greeks_priced: bool = True

    def holding(self, exchange: str, tradingsymbol: str) -> Holding:
        key = f"{exchange}:{tradingsymbol}"
        return self.holdings.get(key) or Holding(key=key)


def instruments_of(sig: Signal | SignalGroup) -> list[tuple[str, str, str]]:
    """(exchange, symbol, product) of each instrument the signal trades."""
    if isinstance(sig, SignalGroup):
        return [(str(leg.exchange), leg.tradingsymbol, str(leg.product)) for leg in sig.legs]
    return [(str(sig.exchange), sig.tradingsymbol, str(sig.product))]


def _pending(orders: Iterable[Order]) -> int:
    """What the orders may still add to the position book: what may still fill, and what the broker reports
    filled that the journal (so the book) lacks yet — a COMPLETE order whose trades are still being read counted
    nowhere, and a strategy's entry judged meanwhile took the broker to TCS -31 beside a limit of 30 (soak seed 19)."""
    return sum(o.sign * (o.remaining + o.unjournaled) for o in orders if not o.is_protective)


def context_from(tracker: PositionTracker, book: OrderBook | None, sig: Signal | SignalGroup, *,
                 prices: dict[str, int] | None = None, lot_sizes: dict[str, int] | None = None,
                 circuits: dict[str, tuple[int, int]] | None = None,
                 greeks: dict[str, tuple[float, float]] | None = None,
                 signal_greeks: tuple[float, float] = (0.0, 0.0), underlying: str = "",
                 greeks_priced: bool = True, open_orders: int | None = None) -> RiskContext:
    """The RiskContext of ``sig`` from kta's position book and order book. ``prices``, ``lot_sizes``
    and ``circuits`` are keyed "EXCHANGE:SYMBOL"; ``greeks`` maps underlying → (net delta, net vega)
    now and ``signal_greeks`` is what the signal adds. ``open_orders`` overrides the book's count of
    working orders (a caller without an OrderBook)."""
    prices, lot_sizes, circuits, greeks = prices or {}, lot_sizes or {}, circuits or {}, greeks or {}
    working = book.unfinished() if book is not None else []  # a decided order on its way counts too
    owed = [o for o in book.owing() if o.is_terminal] if book is not None else []  # filled, not yet in the book
    holdings = {}
    limited = sig.underlying if isinstance(sig, SignalGroup) else sig.tradingsymbol  # the symbol exposure limit's
    for exchange, symbol, product in instruments_of(sig):
        key = f"{exchange}:{symbol}"
        mine = [o for o in working + owed if o.instrument == (exchange, symbol)]
        lower, upper = circuits.get(key, (0, 0))
        holdings[key] = Holding(  # the account's position as the broker holds it: one per instrument and product
            key=key, held=tracker.held(sig.strategy_id, exchange, symbol)[0], product=product,
            held_product=tracker.held_product(sig.strategy_id, exchange, symbol),
            pending=_pending(o for o in mine if o.strategy_id == sig.strategy_id),
            account_long=(sides := tracker.sides(exchange, symbol, product))[0], account_short=sides[1],
            account_pending=_pending(o for o in mine if o.product == product),
            last_price=prices.get(key, 0), lot_size=lot_sizes.get(key, 1), lower=lower, upper=upper)
    return RiskContext(
        # only the entries the limits read (risk.py's _exposure): O(1), not the user's every symbol and strategy
        holdings=holdings, exposure=tracker.at_risk, exposure_by_symbol={limited: tracker.at_risk_of(limited)},
        exposure_by_strategy={sig.strategy_id: tracker.exposure_of(sig.strategy_id)},
        open_orders=len(working) if open_orders is None else open_orders, underlying=underlying,
        net_delta={u: d for u, (d, _) in greeks.items()}, net_vega={u: v for u, (_, v) in greeks.items()},
        signal_delta=signal_greeks[0], signal_vega=signal_greeks[1], greeks_priced=greeks_priced)
