"""Per-strategy P&L of the day from the journal's own fills, the figures the dashboard's strategy panel
and the session report show next to the broker's day P&L.

For each strategy (fills without one are "manual / external"): fills are matched FIFO per instrument
(``shared.trading.positions.FifoBook``, the journal summary's rule), so

* **realised** = Σ closed pieces, **trades** / **wins** / **win rate** count those pieces;
* **unrealised** = the open lots marked at the instrument's last price (the broker's — its holdings' for a
  delivery position carried overnight — else the last fill; 0 while no price is known);
* **charges** = Zerodha's charges of every executed order (``shared.charges``: an order's fills summed,
  so the flat brokerage is counted once per order, as Kite bills it); delivery (CNC) shares bought and sold
  the same day — across the account's strategies, as Kite nets them — are charged as intraday; an expiry
  settlement (``expiry:``) is no trade: no brokerage or exchange charges, only the STT on a bought option
  exercised in the money;
* **net** = realised + unrealised − charges.

A position carried in from an earlier day opens its strategy's book at the previous close (``carried``; as
Kite's day P&L counts it): closed today it is realised from that close — it is not the day's fills alone,
where its closing fill would read as a new open position. The broker's day P&L (Kite's ``m2m``) differs on
purpose: it covers every position in the account (trades made outside kta too) and is before charges. All
money in paise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from shared.charges import ChargesError, Segment, exercise_stt, order_charges, same_day_intraday, segment_of
from shared.trading.positions import FifoBook, signed

MANUAL = "manual / external"


@dataclass
class OpenPosition:
    exchange: str
    tradingsymbol: str
    quantity: int
    average_price: int
    last_price: int
    unrealised: int


@dataclass
class StrategyPnl:
    strategy: str
    realised: int = 0
    unrealised: int = 0
    charges: int = 0
    trades: int = 0
    wins: int = 0
    fills: int = 0
    positions: list[OpenPosition] = field(default_factory=list)
    charges_unknown: int = 0  # orders whose charges the table cannot price (an exchange it does not list)

    @property
    def net(self) -> int:
        return self.realised + self.unrealised - self.charges

    @property
    def win_rate(self) -> float:
        return 100.0 * self.wins / self.trades if self.trades else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "realised": self.realised, "unrealised": self.unrealised,
                "charges": self.charges, "net": self.net, "trades": self.trades, "wins": self.wins,
                "win_rate": self.win_rate, "fills": self.fills, "charges_unknown": self.charges_unknown,
                "positions": [vars(p) for p in self.positions]}


def default_instrument_type(exchange: str, tradingsymbol: str) -> str:
    """The instrument type from Kite's naming when the instrument list is not at hand."""
    if exchange in ("NFO", "BFO", "MCX", "CDS"):
        return tradingsymbol[-2:] if tradingsymbol[-2:] in ("CE", "PE") else "FUT"
    return "EQ"


def order_charges_paise(fills: list[dict[str, Any]], instrument_type: str, intraday: int = 0) -> int:
    """Charges of one executed order from its fills (quantity summed, value-weighted price); ``intraday``: how
    much of a delivery order squared off the same day, charged as intraday (``same_day_intraday``)."""
    first = fills[0]
    quantity = sum(f["quantity"] for f in fills)
    value = sum(f["quantity"] * f["price"] for f in fills)
    seg = segment_of(first["exchange"], instrument_type, first.get("product") or "MIS")
    price = Decimal(value) / quantity / 100
    parts = [(seg, quantity - intraday), (Segment.EQUITY_INTRADAY, intraday)]
    return sum(order_charges(exchange=first["exchange"], segment=s, side=first["transaction_type"], quantity=q,
                             price=price).total_paise for s, q in parts if q)


def _delivery(order_fills: list[dict[str, Any]], instrument_type: str) -> bool:
    first = order_fills[0]
    return first.get("product") == "CNC" and instrument_type == "EQ" and first["exchange"] in ("NSE", "BSE")


def settlement_charges_paise(fills: list[dict[str, Any]], instrument_type: str) -> int:
    """An expiry settlement's charges: the exercise STT of a bought option settled in the money (its closing
    SELL at the intrinsic value), nothing else (as the backtest's ``settlement_cost``)."""
    first = fills[0]
    value = sum(f["quantity"] * f["price"] for f in fills)
    if instrument_type not in ("CE", "PE") or first["transaction_type"] != "SELL" or not value:
        return 0
    stt = exercise_stt(Decimal(value) / 100, on=date.fromisoformat(first["fill_timestamp"][:10]))
    return int((stt * 100).quantize(Decimal(1), ROUND_HALF_UP))


def strategy_pnl(fills: Iterable[dict[str, Any]], marks: dict[tuple[str, str], int],
                 instrument_type: Callable[[str, str], str] = default_instrument_type,
                 carried: Iterable[dict[str, Any]] = ()) -> list[dict[str, Any]]:
    """Rows per strategy (carried ones first, then in first-fill order) plus a ``total`` row; ``fills`` are
    journal trade rows in fill order, ``marks`` the last price (paise) by (exchange, tradingsymbol),
    ``carried`` what each strategy held when the day began: {strategy_id, exchange, tradingsymbol, quantity,
    price} (price: the previous close)."""
    fills = list(fills)
    stats: dict[str, StrategyPnl] = {}
    books: dict[tuple[str, str, str], FifoBook] = {}
    orders: dict[str, list[dict[str, Any]]] = {}
    for c in carried:
        name = c.get("strategy_id") or MANUAL
        stats.setdefault(name, StrategyPnl(name))
        books.setdefault((name, c["exchange"], c["tradingsymbol"]), FifoBook()).fill(c["quantity"], c["price"], "")
    for f in fills:
        name = f.get("strategy_id") or MANUAL
        s = stats.setdefault(name, StrategyPnl(name))
        s.fills += 1
        book = books.setdefault((name, f["exchange"], f["tradingsymbol"]), FifoBook())
        for piece in book.fill(signed(f["transaction_type"], f["quantity"]), f["price"], f.get("fill_timestamp", "")):
            s.realised += piece.pnl
            s.trades += 1
            s.wins += piece.pnl > 0
        orders.setdefault(f["order_id"] or f"{name}:{f.get('trade_id')}", []).append(f)
    types = {key: instrument_type(f[0]["exchange"], f[0]["tradingsymbol"]) for key, f in orders.items()}
    intraday = same_day_intraday((key, f[0]["exchange"], f[0]["tradingsymbol"], f[0]["transaction_type"],
                                  sum(x["quantity"] for x in f))
                                 for key, f in orders.items() if _delivery(f, types[key]))
    for key, order_fills in orders.items():
        s = stats[order_fills[0].get("strategy_id") or MANUAL]
        try:
            s.charges += (settlement_charges_paise(order_fills, types[key]) if key.startswith("expiry:")
                          else order_charges_paise(order_fills, types[key], intraday.get(key, 0)))
        except ChargesError:
            s.charges_unknown += 1
    last_fill = {(f["exchange"], f["tradingsymbol"]): f["price"] for f in fills}
    for (name, exchange, symbol), book in books.items():
        if book.quantity:
            ltp = marks.get((exchange, symbol)) or last_fill.get((exchange, symbol), 0)
            unrealised = book.unrealised(ltp) if ltp else 0  # no price known: not marked at zero (a loss of it all)
            stats[name].unrealised += unrealised
            stats[name].positions.append(OpenPosition(exchange, symbol, book.quantity, book.average_price(), ltp,
                                                      unrealised))
    rows = [s.as_dict() for s in stats.values()]
    total = StrategyPnl("total")
    for s in stats.values():
        for attr in ("realised", "unrealised", "charges", "trades", "wins", "fills", "charges_unknown"):
            setattr(total, attr, getattr(total, attr) + getattr(s, attr))
    return rows + [total.as_dict()] if rows else []
