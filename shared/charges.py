"""Zerodha's charges on an executed order, from ONE documented table per segment.

Used by the backtest engine (every simulated fill), kite_sim's ``POST /charges/orders``, the desk's
P&L net of charges, and ``KiteClient.order_charges`` answers the same question from the real Kite.

The table (``TABLE``) lists, per segment, the rates in force from a date ("era"), newest last, so a
backtest of 2025 pays 2025's rates and a trade today pays today's. Rates are percentages of the order's
turnover (quantity × price; the premium for options) as Zerodha's charge list writes them:

| segment (today) | brokerage | STT / CTT | exchange txn (NSE / BSE / MCX) | stamp (buy) |
| --- | --- | --- | --- | --- |
| equity delivery (CNC) | 0 | 0.1% buy and sell | NSE 0.00307% · BSE 0.00375% | 0.015% |
| equity intraday (MIS) | 0.03% or ₹20, lower | 0.025% sell | as delivery | 0.003% |
| futures | 0.03% or ₹20, lower | 0.05% sell (0.02% before 2026-04-01) | NSE 0.00183% · BSE 0 | 0.002% |
| options | flat ₹20 | 0.15% sell, on premium (0.1% before 2026-04-01) | NSE 0.03553% · BSE 0.0325% | 0.003% |
| MCX futures | 0.03% or ₹20, lower | CTT 0.01% sell | 0.0021% | 0.002% |

Every segment also pays SEBI's fee (₹10 per crore of turnover) and GST at 18% on brokerage + exchange
transaction charges + SEBI fee. Options bought and exercised pay STT on the intrinsic value
(``exercise_stt``). Stamp duty is rounded to the paisa as on Kite's contract notes; the other components
are exact (like Kite's API). ``Charges.total_paise`` rounds the total half-up to the paisa.

Sources: Zerodha's charge list and support articles, the Union Budgets' STT changes (2023-04-01,
2024-10-01, 2026-04-01) and the exchanges' 2024-10-01 flat "true to label" transaction fees. Checks
(``tests/shared/test_charges.py``): Zerodha's brokerage calculator totals for a 500-share round trip at
₹1,000 in each segment, and Kite's own published charge examples (kiteconnect-mocks) in the era they were
made.

Delivery shares bought and sold on the same day are not delivered: Zerodha charges that quantity as an
intraday trade — intraday brokerage, STT 0.025 % on the sell side only, stamp duty at the intraday 0.003 %,
no DP charge (Zerodha support, "Why have I been charged brokerage even though I have taken delivery trades"
and its charge list). ``same_day_intraday`` says how much of each of a day's CNC orders that is.

Not modelled: DP charges on delivery sells (per ISIN per day, not per order), the ₹0.01 minimum per
delivery contract note, state-wise stamp variations before 2020, currency derivatives.
"""

from __future__ import annotations

import enum
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal

import msgspec

D = Decimal
HUNDRED = D(100)
CRORE = D(10_000_000)
PAISA = D("0.01")


class Segment(enum.StrEnum):
    EQUITY_DELIVERY = "equity_delivery"
    EQUITY_INTRADAY = "equity_intraday"
    FUTURES = "futures"
    OPTIONS = "options"
    COMMODITY_FUTURES = "commodity_futures"


@dataclass(frozen=True)
class Rates:
    """One era of one segment. Percentages as Zerodha writes them (``D("0.03")`` is 0.03 %)."""

    since: date
    brokerage_pct: Decimal = D(0)  # of turnover ...
    brokerage_cap: Decimal = D(0)  # ... capped at this many rupees per executed order (0: no cap)
    brokerage_flat: Decimal = D(0)  # rupees per executed order instead of a percentage
    stt_buy_pct: Decimal = D(0)
    stt_sell_pct: Decimal = D(0)
    stt_exercise_pct: Decimal = D(0)  # of the intrinsic value of options bought and exercised
    tax_type: str = "stt"  # "ctt" on commodities
    txn_pct: dict[str, Decimal] = field(default_factory=dict)  # by exchange
    stamp_buy_pct: Decimal = D(0)
    sebi_per_crore: Decimal = D(10)
    gst_pct: Decimal = D(18)


# Exchange transaction charges as Zerodha lists them: the exchange's fee plus NSE's investor protection
# fund (₹10 per crore; ₹50 per crore of premium on options) — 0.00307% is NSE's ₹2.97 per lakh + 0.0001%.
_EQ_TXN = {date(2021, 1, 1): {"NSE": D("0.00345"), "BSE": D("0.003")},
           date(2023, 4, 1): {"NSE": D("0.00322"), "BSE": D("0.00375")},
           date(2024, 10, 1): {"NSE": D("0.00307"), "BSE": D("0.00375")}}
_INTRADAY = dict(brokerage_pct=D("0.03"), brokerage_cap=D(20), stt_sell_pct=D("0.025"), stamp_buy_pct=D("0.003"))
_DELIVERY = dict(stt_buy_pct=D("0.1"), stt_sell_pct=D("0.1"), stamp_buy_pct=D("0.015"))
_FUTURES = dict(brokerage_pct=D("0.03"), brokerage_cap=D(20), stamp_buy_pct=D("0.002"))
_OPTIONS = dict(brokerage_flat=D(20), stamp_buy_pct=D("0.003"))
_MCX = dict(brokerage_pct=D("0.03"), brokerage_cap=D(20), stt_sell_pct=D("0.01"), tax_type="ctt",
            stamp_buy_pct=D("0.002"))

TABLE: dict[Segment, list[Rates]] = {
    Segment.EQUITY_DELIVERY: [Rates(since, txn_pct=txn, **_DELIVERY) for since, txn in _EQ_TXN.items()],
    Segment.EQUITY_INTRADAY: [Rates(since, txn_pct=txn, **_INTRADAY) for since, txn in _EQ_TXN.items()],
    Segment.FUTURES: [
        Rates(date(2021, 1, 1), stt_sell_pct=D("0.01"), txn_pct={"NFO": D("0.002"), "BFO": D(0)}, **_FUTURES),
        Rates(date(2023, 4, 1), stt_sell_pct=D("0.0125"), txn_pct={"NFO": D("0.00188"), "BFO": D(0)}, **_FUTURES),
        Rates(date(2024, 10, 1), stt_sell_pct=D("0.02"), txn_pct={"NFO": D("0.00183"), "BFO": D(0)}, **_FUTURES),
        Rates(date(2026, 4, 1), stt_sell_pct=D("0.05"), txn_pct={"NFO": D("0.00183"), "BFO": D(0)}, **_FUTURES),
    ],
    Segment.OPTIONS: [
        Rates(date(2021, 1, 1), stt_sell_pct=D("0.05"), stt_exercise_pct=D("0.125"),
              txn_pct={"NFO": D("0.0505"), "BFO": D("0.05")}, **_OPTIONS),
        Rates(date(2023, 4, 1), stt_sell_pct=D("0.0625"), stt_exercise_pct=D("0.125"),
              txn_pct={"NFO": D("0.0495"), "BFO": D("0.05")}, **_OPTIONS),
        Rates(date(2024, 10, 1), stt_sell_pct=D("0.1"), stt_exercise_pct=D("0.125"),
              txn_pct={"NFO": D("0.03553"), "BFO": D("0.0325")}, **_OPTIONS),
        Rates(date(2026, 4, 1), stt_sell_pct=D("0.15"), stt_exercise_pct=D("0.15"),
              txn_pct={"NFO": D("0.03553"), "BFO": D("0.0325")}, **_OPTIONS),
    ],
    Segment.COMMODITY_FUTURES: [
        Rates(date(2021, 1, 1), txn_pct={"MCX": D("0.0026")}, **_MCX),
        Rates(date(2024, 10, 1), txn_pct={"MCX": D("0.0021")}, **_MCX),
    ],
}


class ChargesError(ValueError):
    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class Gst(msgspec.Struct, frozen=True):
    igst: float
    cgst: float
    sgst: float
    total: float


class Charges(msgspec.Struct, frozen=True, kw_only=True):
    """Kite's ``charges`` object of ``/charges/orders`` (rupees), plus the total in exact paise."""

    transaction_tax: float
    transaction_tax_type: str
    exchange_turnover_charge: float
    sebi_turnover_charge: float
    brokerage: float
    stamp_duty: float
    gst: Gst
    total: float
    total_paise: int

    def as_kite(self) -> dict:
        out = msgspec.to_builtins(self)
        del out["total_paise"]
        return out


def segment_of(exchange: str, instrument_type: str, product: str) -> Segment:
    """The charges segment of an order: equity by product (CNC delivers), derivatives by type."""
    if exchange == "MCX":
        if instrument_type != "FUT":
            raise ChargesError("instrument_type", "only MCX futures are in the charges table")
        return Segment.COMMODITY_FUTURES
    if instrument_type in ("CE", "PE"):
        return Segment.OPTIONS
    if instrument_type == "FUT":
        return Segment.FUTURES
    if exchange not in ("NSE", "BSE"):
        raise ChargesError("exchange", f"no charges for exchange {exchange!r}")
    return Segment.EQUITY_DELIVERY if product == "CNC" else Segment.EQUITY_INTRADAY


def rates_for(segment: Segment, on: date | None = None) -> Rates:
    """The era of ``segment`` in force on ``on`` (today when None)."""
    on = on or date.today()
    eras = TABLE[segment]
    current = eras[0]
    for era in eras:
        if era.since <= on:
            current = era
    return current


def _pct(value: Decimal, pct: Decimal) -> Decimal:
    return value * pct / HUNDRED


def _decimal(value, name: str) -> Decimal:
    try:
        out = value if type(value) is Decimal else D(str(value))
    except ArithmeticError:
        raise ChargesError(name, f"{name} must be a number") from None
    if not out.is_finite():
        raise ChargesError(name, f"{name} must be a number")
    return out


def order_charges(*, exchange: str, segment: Segment, side: str, quantity: int, price, on: date | None = None,
                  rates: Rates | None = None) -> Charges:
    """Charges of one executed order of ``quantity`` at ``price`` rupees (the premium for options)."""
    brokerage, tax, txn, sebi, stamp, gst, total, r = _components(exchange, segment, side, quantity, price, on, rates)
    return Charges(transaction_tax=float(tax), transaction_tax_type=r.tax_type, exchange_turnover_charge=float(txn),
                   sebi_turnover_charge=float(sebi), brokerage=float(brokerage), stamp_duty=float(stamp),
                   gst=Gst(igst=float(gst), cgst=0.0, sgst=0.0, total=float(gst)), total=float(total),
                   total_paise=_total_paise(total))


def _components(exchange: str, segment: Segment, side: str, quantity: int, price, on: date | None,
                rates: Rates | None) -> tuple[Decimal, Decimal, Decimal, Decimal, Decimal, Decimal, Decimal, Rates]:
    """(brokerage, tax, exchange txn, SEBI, stamp, GST, total, rates) of one order, rupees, checked."""
    if side not in ("BUY", "SELL"):
        raise ChargesError("transaction_type", f"transaction_type must be BUY or SELL, not {side!r}")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity <= 0:
        raise ChargesError("quantity", f"quantity must be a positive integer, not {quantity!r}")
    px = _decimal(price, "price")
    if px <= 0:
        raise ChargesError("price", f"price must be above zero, not {price!r}")
    r = rates or rates_for(segment, on)
    if exchange not in r.txn_pct:
        raise ChargesError("exchange", f"{segment.value} is not traded on {exchange!r}")
    turnover = px * quantity
    buy = side == "BUY"
    if r.brokerage_flat:
        brokerage = r.brokerage_flat
    else:
        brokerage = _pct(turnover, r.brokerage_pct)
        if r.brokerage_cap:
            brokerage = min(brokerage, r.brokerage_cap)
    tax = _pct(turnover, r.stt_buy_pct if buy else r.stt_sell_pct)
    txn = _pct(turnover, r.txn_pct[exchange])
    sebi = turnover * r.sebi_per_crore / CRORE
    stamp = _pct(turnover, r.stamp_buy_pct).quantize(PAISA, ROUND_HALF_UP) if buy else D(0)
    gst = _pct(brokerage + txn + sebi, r.gst_pct)
    total = brokerage + tax + txn + sebi + stamp + gst
    return brokerage, tax, txn, sebi, stamp, gst, total, r


def _total_paise(total: Decimal) -> int:
    return int((total * HUNDRED).quantize(D(1), ROUND_HALF_UP))


def exercise_stt(intrinsic_value, on: date | None = None) -> Decimal:
    """STT (rupees) on options bought and exercised, charged on the intrinsic value at expiry."""
    return _pct(_decimal(intrinsic_value, "intrinsic_value"), rates_for(Segment.OPTIONS, on).stt_exercise_pct)


def charges_paise(exchange: str, instrument_type: str, product: str, side: str, quantity: int, price_paise: int,
                  on: date | None = None) -> int:
    """The engine's shorthand: total charges of a fill, in paise, from a price in paise."""
    seg = segment_of(exchange, instrument_type, product)
    total = _components(exchange, seg, side, quantity, D(price_paise) / HUNDRED, on, None)[6]
    return _total_paise(total)


def same_day_intraday(orders: Iterable[tuple[Hashable, str, str, str, int]]) -> dict[Hashable, int]:
    """One day's executed delivery (CNC) equity orders of an account, in time order, as ``(key, exchange,
    tradingsymbol, side, quantity)``: the quantity of each charged as intraday. Per instrument, what was both
    bought and sold that day (the smaller side) squares off; on each side the earliest orders take it."""
    lines: dict[tuple[str, str], list[tuple[Hashable, str, int]]] = {}
    for key, exchange, symbol, side, quantity in orders:
        lines.setdefault((exchange, symbol), []).append((key, side, quantity))
    out: dict[Hashable, int] = {}
    for rows in lines.values():
        both = min(sum(q for _, side, q in rows if side == "BUY"), sum(q for _, side, q in rows if side == "SELL"))
        left = {"BUY": both, "SELL": both}
        for key, side, quantity in rows:
            out[key] = take = min(quantity, left[side])
            left[side] -= take
    return out
