"""The manual order form read into a ``PlaceOrder``: quantity in lots (shares for a stock), prices in
rupees, an SL / SL-M order's own trigger, every bad field named. What the form cannot know (risk limits, a stop on the wrong side of the
market, a position to exit) the execution worker refuses, naming the field, through the same risk
checks and protective-order logic as a strategy's signal; the order is tagged ``manual``."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from shared import messages as m
from shared.kite.models import Instrument

SIDES = ("BUY", "SELL")
PRODUCTS = ("MIS", "CNC", "NRML")
TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
ARTICLE = {"MARKET": "a", "LIMIT": "a", "SL": "an", "SL-M": "an"}
WITH_PRICE = {"MARKET": "LIMIT", "SL-M": "SL"}  # the same order with a price
INTENTS = ("entry", "exit")
FIELDS = ("symbol", "transaction_type", "lots", "product", "order_type", "price", "trigger_price", "stop_loss",
          "target", "intent")


def rupees(raw: str, name: str, errors: dict[str, str], tick: float | None = 0.05) -> int | None:
    """Rupees as typed → exact paise (None when empty or wrong, the error named); ``tick=None``: the
    broker judges the tick (a row being modified does not carry its instrument)."""
    if not raw:
        return None
    try:
        value = Decimal(raw.replace(",", "").replace("₹", "").strip())
    except InvalidOperation:
        errors[name] = f"{name}: a price in rupees is needed, not {raw!r}"
        return None
    if not value.is_finite() or value <= 0:
        errors[name] = f"{name}: must be above zero"
        return None
    paise = value * 100
    if tick is None:
        if paise != paise.to_integral_value():
            errors[name] = f"{name}: at most two decimals (paise)"
            return None
        return int(paise)
    step = Decimal(str(tick)) * 100
    if paise != paise.to_integral_value() or paise % step:
        errors[name] = f"{name}: must be a multiple of the tick size ₹{tick:g}"
        return None
    return int(paise)


def parse_order(form: Mapping[str, Any], inst: Instrument | None) -> tuple[m.PlaceOrder | None, dict[str, str],
                                                                           dict[str, str]]:
    """(the command or None, the values as typed, every error by field)."""
    values = {k: str(form.get(k) or "").strip() for k in FIELDS}
    errors: dict[str, str] = {}
    if inst is None:
        errors["symbol"] = "symbol: search and pick an instrument" if not values["symbol"] else \
            f"symbol: no instrument {values['symbol']!r}"
    for name, allowed in (("transaction_type", SIDES), ("product", PRODUCTS), ("order_type", TYPES),
                          ("intent", INTENTS)):
        if values[name] not in allowed:
            errors[name] = f"{name}: one of {', '.join(allowed)}"
    lots = 0
    if not values["lots"].isdigit() or int(values["lots"]) < 1:
        errors["lots"] = "lots: a whole number of lots, at least 1"
    else:
        lots = int(values["lots"])
    tick = inst.tick_size if inst is not None and inst.tick_size else 0.05
    kind = values["order_type"]
    price = rupees(values["price"], "price", errors, tick)
    if kind in ("LIMIT", "SL") and price is None and "price" not in errors:
        errors["price"] = f"price: {ARTICLE[kind]} {kind} order needs its price"
    if kind in ("MARKET", "SL-M") and values["price"]:
        errors["price"] = f"price: leave it empty for {ARTICLE[kind]} {kind} order (or choose {WITH_PRICE[kind]})"
    trigger = rupees(values["trigger_price"], "trigger_price", errors, tick)
    stop_order = kind in ("SL", "SL-M")
    if stop_order and trigger is None and "trigger_price" not in errors:
        errors["trigger_price"] = f"trigger_price: an {kind} order waits for its trigger price"
    if kind in ("MARKET", "LIMIT") and values["trigger_price"]:
        errors["trigger_price"] = f"trigger_price: a {kind} order has no trigger (choose SL or SL-M)"
    if stop_order and values["intent"] == "exit":
        errors["order_type"] = "order_type: an exit goes at the market or a limit (the position's stop-loss " \
                               "is its stop order: move its trigger in the order book)"
    side = values["transaction_type"]
    if kind == "SL" and price and trigger and (price < trigger if side == "BUY" else price > trigger):
        errors["price"] = (f"price: an SL {side}'s limit must be at or {'above' if side == 'BUY' else 'below'} "
                           f"its trigger")
    stop = rupees(values["stop_loss"], "stop_loss", errors, tick)
    target = rupees(values["target"], "target", errors, tick)
    if inst is not None and values["product"] == "CNC" and inst.exchange not in ("NSE", "BSE"):
        errors["product"] = "product: CNC is for stocks; use NRML for F&O"
    if inst is not None and values["product"] == "NRML" and inst.exchange in ("NSE", "BSE"):
        errors["product"] = "product: NRML is for F&O; use CNC (delivery) or MIS (intraday)"
    if errors:
        return None, values, errors
    assert inst is not None
    return m.PlaceOrder(exchange=m.Exchange(inst.exchange), tradingsymbol=inst.tradingsymbol,
                        transaction_type=m.TransactionType(values["transaction_type"]),
                        quantity=lots * max(1, inst.lot_size), product=m.Product(values["product"]),
                        order_type=m.OrderType(values["order_type"]), price=price or 0, trigger_price=trigger,
                        stop_loss=stop, target=target, intent=values["intent"]), values, {}  # type: ignore[arg-type]
