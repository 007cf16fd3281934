"""Zerodha's charges as Kite reports them, from the one charges table (``shared/charges.py``): the virtual
contract note (``POST /charges/orders``) and the ``charges`` of the margin calculators. Rates are those in
force on the sim's trading day."""

from __future__ import annotations

from kite_sim.errors import KiteError
from kite_sim.instruments import Instrument
from kite_sim.market import Market
from kite_sim.validation import PRODUCTS, instrument
from shared.charges import ChargesError, order_charges, segment_of

TOTALLED = ("transaction_tax", "exchange_turnover_charge", "sebi_turnover_charge", "brokerage", "stamp_duty", "total")


def charges(market: Market, inst: Instrument, product: str, side: str, quantity: int, price: float) -> dict:
    """Kite's ``charges`` object of one executed order (``price`` in rupees: the premium for options)."""
    try:
        return order_charges(exchange=inst.exchange, segment=segment_of(inst.exchange, inst.instrument_type, product),
                             side=side, quantity=quantity, price=price, on=market.clock.today()).as_kite()
    except ChargesError as e:
        raise KiteError(f"Invalid `{e.field}`: {e}") from None


def contract_note(market: Market, rows: list[dict]) -> list[dict]:
    """``POST /charges/orders``: each executed order (``average_price`` non-zero) with its charges."""
    out = []
    for row in rows:
        inst = instrument(market.universe, row)
        product = row.get("product")
        if product not in PRODUCTS:
            raise KiteError("Invalid `product`.")
        try:
            quantity, price = int(row.get("quantity")), float(row.get("average_price"))
        except (TypeError, ValueError):
            raise KiteError("Invalid `quantity` or `average_price`.") from None
        if price <= 0:
            raise KiteError("Invalid `average_price`: it must be the executed price, above zero.")
        side = row.get("transaction_type")
        out.append({"transaction_type": side, "tradingsymbol": inst.tradingsymbol, "exchange": inst.exchange,
                    "variety": row.get("variety") or "regular", "product": product,
                    "order_type": row.get("order_type") or "MARKET", "quantity": quantity, "price": price,
                    "charges": charges(market, inst, product, side, quantity, price)})
    return out


def summed(items: list[dict]) -> dict:
    """Several orders' charges as one object (the basket's)."""
    if not items:
        return empty()
    out = {k: sum(c[k] for c in items) for k in TOTALLED}
    gst = sum(c["gst"]["total"] for c in items)
    return {**out, "transaction_tax_type": items[0]["transaction_tax_type"],
            "gst": {"igst": gst, "cgst": 0, "sgst": 0, "total": gst}}


def empty() -> dict:
    return {"transaction_tax": 0, "transaction_tax_type": "stt", "exchange_turnover_charge": 0,
            "sebi_turnover_charge": 0, "brokerage": 0, "stamp_duty": 0,
            "gst": {"igst": 0, "cgst": 0, "sgst": 0, "total": 0}, "total": 0}
