"""What Kite refuses synchronously (HTTP 400 ``InputException``) before an order reaches the OMS: unknown
instruments, bad fields, lot sizes, freeze quantities, products, tags, MARKET without protection, expired
contracts. Kite's messages, word for word where known. The result is an :class:`OrderSpec` that the
broker admits (market hours, margin, circuit limits) and matches."""

from __future__ import annotations

from kite_sim.instruments import Instrument, Universe
from kite_sim.orders import OrderError, OrderSpec, paise
from shared import fills

VARIETIES = ("regular", "amo")
ORDER_TYPES = ("MARKET", "LIMIT", "SL", "SL-M")
PRODUCTS = ("CNC", "MIS", "NRML", "MTF")
VALIDITIES = ("DAY", "IOC", "TTL")


def instrument(universe: Universe, f: dict) -> Instrument:
    inst = universe.find(f"{f.get('exchange', '')}:{f.get('tradingsymbol', '')}")
    if inst is None:
        raise OrderError("Invalid `tradingsymbol`.", "InputException")
    if not inst.tradable:
        raise OrderError("Instrument is not tradable.", "InputException")
    return inst


def order_spec(universe: Universe, today, variety: str, f: dict) -> OrderSpec:
    """The order form ``f`` checked field by field, in the order Kite reports the first problem."""
    if variety not in VARIETIES:
        raise OrderError(f"Invalid `variety`. {variety} orders are not supported.", "InputException")
    inst = instrument(universe, f)
    tt, ot, product = f.get("transaction_type"), f.get("order_type"), f.get("product")
    if tt not in ("BUY", "SELL"):
        raise OrderError("Invalid `transaction_type`.")
    if ot not in ORDER_TYPES:
        raise OrderError("Invalid `order_type`.")
    if product not in PRODUCTS:
        raise OrderError("Invalid `product`.")
    try:
        qty = int(f.get("quantity", 0))
        price = paise(float(f.get("price") or 0))
        trigger = paise(float(f.get("trigger_price") or 0))
        mp = float(f.get("market_protection") or 0)
    except (TypeError, ValueError):
        raise OrderError("Invalid `quantity`, `price` or `trigger_price`.") from None
    validity = f.get("validity") or "DAY"
    if validity not in VALIDITIES:
        raise OrderError("Invalid `validity`.")
    if (problem := fills.quantity_error(qty, inst.lot_size, inst.freeze_quantity)) is not None:
        raise OrderError(problem)
    if ot in ("LIMIT", "SL") and price <= 0:
        raise OrderError("Invalid `price`.")
    if ot in ("SL", "SL-M") and trigger <= 0:
        raise OrderError("Invalid `trigger_price`.")
    if (problem := stop_limit_error(tt, ot, price, trigger)) is not None:
        raise OrderError(problem)
    if product == "CNC" and inst.instrument_type != "EQ":
        raise OrderError("CNC is for equity delivery only; use NRML or MIS.")
    tag = f.get("tag") or None
    if tag and len(tag) > 20:
        raise OrderError("Invalid `tag`. Tag length should be less than or equal to 20.")
    if ot == "MARKET" and mp == 0:
        raise OrderError("Market orders without market protection are not allowed via API. "
                         "Set `market_protection`.", "InputException")
    if inst.expiry is not None and inst.expiry < today:
        raise OrderError("Instrument has expired.")
    return OrderSpec(variety, inst, tt, ot, product, qty, price, trigger, validity, tag, mp)


def stop_limit_error(side: str, order_type: str, price: int, trigger: int) -> str | None:
    """An SL's limit must lie beyond its trigger in the order's direction (Kite's message), else None."""
    if order_type != "SL":
        return None
    if side == "BUY" and trigger > price:
        return "Trigger price can't be higher than price"
    if side == "SELL" and trigger < price:
        return "Trigger price can't be lesser than price"
    return None


def stop_trigger_error(side: str, trigger: int, ltp: int, lower_circuit: int, upper_circuit: int) -> str | None:
    """Kite's RMS refusal of a stop whose trigger the market has already passed or that lies outside the
    day's circuit band (a buy stop triggers above the last price, a sell stop below it), else None."""
    if side == "BUY":
        if trigger > upper_circuit:
            return "Trigger price for stoploss buy orders cannot be above the upper circuit price."
        if trigger <= ltp:
            return "Trigger price for stoploss buy orders should be higher than the last traded price."
    else:
        if trigger < lower_circuit:
            return "Trigger price for stoploss sell orders cannot be below the lower circuit price."
        if trigger >= ltp:
            return "Trigger price for stoploss sell orders should be lower than the last traded price."
    return None
