"""Kite Connect responses as msgspec Structs: Kite's field names and units (rupees as floats, like
pykiteconnect); unknown fields are ignored so the real Kite adding one never breaks kta."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import msgspec
from msgspec import Struct, field


class Profile(Struct, kw_only=True):
    user_id: str
    user_name: str = ""
    user_shortname: str = ""
    email: str = ""
    user_type: str = ""
    broker: str = ""
    exchanges: list[str] = field(default_factory=list)
    products: list[str] = field(default_factory=list)
    order_types: list[str] = field(default_factory=list)
    avatar_url: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)


class Session(Profile, kw_only=True):
    api_key: str = ""
    access_token: str = ""
    public_token: str = ""
    refresh_token: str = ""
    enctoken: str = ""
    silo: str = ""
    login_time: str = ""


class MarginAvailable(Struct, kw_only=True):
    adhoc_margin: float = 0
    cash: float = 0
    opening_balance: float = 0
    live_balance: float = 0
    collateral: float = 0
    intraday_payin: float = 0


class MarginUtilised(Struct, kw_only=True):
    debits: float = 0
    exposure: float = 0
    m2m_realised: float = 0
    m2m_unrealised: float = 0
    option_premium: float = 0
    payout: float = 0
    span: float = 0
    holding_sales: float = 0
    turnover: float = 0
    liquid_collateral: float = 0
    stock_collateral: float = 0
    delivery: float = 0


class MarginSegment(Struct, kw_only=True):
    enabled: bool = True
    net: float = 0
    available: MarginAvailable = field(default_factory=MarginAvailable)
    utilised: MarginUtilised = field(default_factory=MarginUtilised)


class Margins(Struct, kw_only=True):
    equity: MarginSegment | None = None
    commodity: MarginSegment | None = None


class Order(Struct, kw_only=True):
    order_id: str
    status: str
    tradingsymbol: str = ""
    exchange: str = ""
    instrument_token: int = 0
    transaction_type: str = ""
    order_type: str = ""
    product: str = ""
    variety: str = "regular"
    validity: str = "DAY"
    quantity: int = 0
    disclosed_quantity: int = 0
    price: float = 0
    trigger_price: float = 0
    average_price: float = 0
    filled_quantity: int = 0
    pending_quantity: int = 0
    cancelled_quantity: int = 0
    market_protection: float = 0
    status_message: str | None = None
    status_message_raw: str | None = None
    exchange_order_id: str | None = None
    parent_order_id: str | None = None
    order_timestamp: str | None = None
    exchange_timestamp: str | None = None
    exchange_update_timestamp: str | None = None
    placed_by: str = ""
    account_id: str = ""
    modified: bool = False
    tag: str | None = None
    tags: list[str] = field(default_factory=list)
    guid: str | None = None
    meta: Any = None
    validity_ttl: int = 0
    auction_number: str | None = None
    terminal_id: str | None = None


class Trade(Struct, kw_only=True):
    trade_id: str
    order_id: str
    exchange: str = ""
    tradingsymbol: str = ""
    instrument_token: int = 0
    product: str = ""
    average_price: float = 0
    quantity: int = 0
    transaction_type: str = ""
    exchange_order_id: str | None = None
    fill_timestamp: str | None = None
    order_timestamp: str | None = None
    exchange_timestamp: str | None = None


class GttOrderResult(Struct, kw_only=True):
    status: str = ""  # success | failed
    order_id: str = ""
    rejection_reason: str = ""


class GttLegResult(Struct, kw_only=True):
    """What a fired leg did: the order it placed (or why not)."""

    order_result: GttOrderResult = field(default_factory=GttOrderResult)
    triggered_at: float = 0
    timestamp: str = ""
    meta: Any = None


class GttLeg(Struct, kw_only=True):
    exchange: str = ""
    tradingsymbol: str = ""
    product: str = ""
    order_type: str = "LIMIT"
    transaction_type: str = ""
    quantity: int = 0
    price: float = 0
    result: GttLegResult | None = None


class GttCondition(Struct, kw_only=True):
    exchange: str = ""
    tradingsymbol: str = ""
    trigger_values: list[float] = field(default_factory=list)
    last_price: float = 0
    instrument_token: int = 0


class Gtt(Struct, kw_only=True):
    """A GTT (good till triggered) trigger, single or two-leg (OCO): ``/gtt/triggers``."""

    id: int
    status: str  # active, triggered, disabled, expired, cancelled, rejected, deleted
    type: str = ""  # single | two-leg
    user_id: str = ""
    created_at: str = ""
    updated_at: str = ""
    expires_at: str = ""
    condition: GttCondition = field(default_factory=GttCondition)
    orders: list[GttLeg] = field(default_factory=list)
    meta: Any = None


class Position(Struct, kw_only=True):
    tradingsymbol: str
    exchange: str
    instrument_token: int = 0
    product: str = ""
    quantity: int = 0
    overnight_quantity: int = 0
    multiplier: float = 1
    average_price: float = 0
    close_price: float = 0
    last_price: float = 0
    value: float = 0
    pnl: float = 0
    m2m: float = 0
    unrealised: float = 0
    realised: float = 0
    buy_quantity: int = 0
    buy_price: float = 0
    buy_value: float = 0
    buy_m2m: float = 0
    sell_quantity: int = 0
    sell_price: float = 0
    sell_value: float = 0
    sell_m2m: float = 0
    day_buy_quantity: int = 0
    day_buy_price: float = 0
    day_buy_value: float = 0
    day_sell_quantity: int = 0
    day_sell_price: float = 0
    day_sell_value: float = 0


class Positions(Struct, kw_only=True):
    net: list[Position] = field(default_factory=list)
    day: list[Position] = field(default_factory=list)


class HoldingMTF(Struct, kw_only=True):
    """The margin-trading-facility part of a holding."""

    quantity: int = 0
    used_quantity: int = 0
    average_price: float = 0
    value: float = 0
    initial_margin: float = 0


class Holding(Struct, kw_only=True):
    tradingsymbol: str
    exchange: str
    instrument_token: int = 0
    isin: str = ""
    product: str = ""
    quantity: int = 0
    t1_quantity: int = 0
    realised_quantity: int = 0
    used_quantity: int = 0
    authorised_quantity: int = 0
    opening_quantity: int = 0
    collateral_quantity: int = 0
    short_quantity: int = 0
    average_price: float = 0
    last_price: float = 0
    close_price: float = 0
    pnl: float = 0
    day_change: float = 0
    day_change_percentage: float = 0
    price: float = 0
    authorised_date: str | None = None
    authorisation: dict[str, Any] = field(default_factory=dict)
    collateral_type: str = ""
    discrepancy: bool = False
    mtf: HoldingMTF = field(default_factory=HoldingMTF)


class Instrument(Struct, kw_only=True):
    instrument_token: int
    exchange_token: int
    tradingsymbol: str
    name: str
    last_price: float
    expiry: date | None
    strike: float
    tick_size: float
    lot_size: int
    instrument_type: str
    segment: str
    exchange: str


class OHLCValues(Struct, kw_only=True):
    open: float = 0
    high: float = 0
    low: float = 0
    close: float = 0


class DepthLevel(Struct, kw_only=True):
    price: float = 0
    quantity: int = 0
    orders: int = 0


class QuoteDepth(Struct, kw_only=True):
    buy: list[DepthLevel] = field(default_factory=list)
    sell: list[DepthLevel] = field(default_factory=list)


class Quote(Struct, kw_only=True):
    instrument_token: int
    last_price: float
    timestamp: str | None = None
    last_trade_time: str | None = None
    last_quantity: int = 0
    buy_quantity: int = 0
    sell_quantity: int = 0
    volume: int = 0
    average_price: float = 0
    oi: float = 0
    oi_day_high: float = 0
    oi_day_low: float = 0
    net_change: float = 0
    lower_circuit_limit: float = 0
    upper_circuit_limit: float = 0
    ohlc: OHLCValues = field(default_factory=OHLCValues)
    depth: QuoteDepth = field(default_factory=QuoteDepth)


class OHLCQuote(Struct, kw_only=True):
    instrument_token: int
    last_price: float
    ohlc: OHLCValues = field(default_factory=OHLCValues)


class LTPQuote(Struct, kw_only=True):
    instrument_token: int
    last_price: float


class Candle(Struct, array_like=True):
    """``[timestamp, open, high, low, close, volume(, oi)]`` exactly as Kite sends a candle."""

    date: datetime
    open: float
    high: float
    low: float
    close: float
    volume: int
    oi: int | None = None


class OrderMargin(Struct, kw_only=True):
    type: str = ""
    tradingsymbol: str = ""
    exchange: str = ""
    span: float = 0
    exposure: float = 0
    option_premium: float = 0
    additional: float = 0
    bo: float = 0
    cash: float = 0
    var: float = 0
    pnl: dict[str, float] = field(default_factory=dict)
    leverage: float = 1
    charges: dict[str, Any] = field(default_factory=dict)
    total: float = 0


class BasketMargins(Struct, kw_only=True):
    initial: OrderMargin
    final: OrderMargin
    orders: list[OrderMargin] = field(default_factory=list)
    charges: dict[str, Any] = field(default_factory=dict)


class OrderCharges(Struct, kw_only=True):
    """One row of ``POST /charges/orders`` (a virtual contract note); ``charges`` has Kite's breakdown."""

    transaction_type: str = ""
    tradingsymbol: str = ""
    exchange: str = ""
    variety: str = ""
    product: str = ""
    order_type: str = ""
    quantity: int = 0
    price: float = 0
    charges: dict[str, Any] = field(default_factory=dict)


def _dec_hook(kind, obj):
    if kind is datetime and isinstance(obj, str):
        return datetime.strptime(obj, "%Y-%m-%dT%H:%M:%S%z")
    raise NotImplementedError


def convert(obj: Any, kind: Any) -> Any:
    """JSON builtins to a model; Kite's ``+0530`` candle times handled."""
    return msgspec.convert(obj, kind, strict=False, dec_hook=_dec_hook)
