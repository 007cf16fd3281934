"""The trader's hands on the desk: manual order entry (symbol search, side, lots, product, type, price,
stop-loss, target) through the execution worker's risk checks and protection; modify and cancel from a
row of the order book; Halt now and Square off all. Each answers with the part of the page it changed;
a refusal is shown next to the field it names (the form keeps what was typed)."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.response import Template

from gateway.order_entry import FIELDS, INTENTS, PRODUCTS, SIDES, TYPES, parse_order, rupees
from gateway.page_context import STATUS_CHANGED, attempt, partial, risk_context
from gateway.trading import Trading, TradingError

ORDERS_CHANGED = {"HX-Trigger": "kta:orders"}  # the order book re-fetches its first page
BOTH_CHANGED = {"HX-Trigger": "kta:orders, kta:status"}
CHOICES = {"sides": SIDES, "products": PRODUCTS, "types": TYPES, "intents": INTENTS}
DEFAULTS = {"transaction_type": "BUY", "lots": "1", "product": "MIS", "order_type": "MARKET", "intent": "entry"}


def entry(request: Request, headers: dict | None = None, **context) -> Template:
    context.setdefault("values", dict(DEFAULTS))
    context.setdefault("errors", {})
    return partial("order_entry", request, headers, **CHOICES, **context)


def describe(inst) -> dict:
    return {"key": f"{inst.exchange}:{inst.tradingsymbol}", "lot_size": max(1, inst.lot_size),
            "tick": inst.tick_size or 0.05, "kind": inst.instrument_type, "exchange": inst.exchange}


async def market_of(trading: Trading, user_id: str, key: str) -> dict | None:
    """Where the instrument trades now (last, best bid/ask, the day's circuit band) for the trader pricing
    a LIMIT or a stop; None when the broker cannot say (the form still works)."""
    quotes, _ = await attempt(trading.broker(user_id, "quote", key))
    q = (quotes or {}).get(key)
    if not q:
        return None
    depth = q.get("depth") or {}
    return {"last": q["last_price"], "bid": _best(depth.get("buy")), "ask": _best(depth.get("sell")),
            "lower": q.get("lower_circuit_limit") or 0, "upper": q.get("upper_circuit_limit") or 0}


def _best(levels: list[dict] | None) -> float:
    return next((level["price"] for level in levels or [] if level.get("price")), 0)


class OrderPagesController(Controller):
    include_in_schema = False

    @get("/ui/order-entry")
    async def form(self, request: Request, trading: Trading, user_id: str, symbol: str = "") -> Template:
        """The empty form, or the form with an instrument picked from the search results."""
        inst = trading.instruments.find(symbol) if symbol else None
        values = dict(DEFAULTS, symbol=describe(inst)["key"]) if inst else dict(DEFAULTS)
        if inst is not None and inst.exchange not in ("NSE", "BSE"):
            values["product"] = "NRML"
        picked = describe(inst) if inst else None
        if picked:
            picked["quote"] = await market_of(trading, user_id, picked["key"])
        return entry(request, values=values, picked=picked)

    @get("/ui/order-entry/search")
    async def search(self, request: Request, trading: Trading, user_id: str, q: str = "") -> Template:
        results, error = await attempt(trading.search_instruments(q, 12, user_id)) if q.strip() else ([], "")
        return partial("symbol_results", request, q=q, results=results or [], error=error, for_order=True)

    @post("/ui/order-entry", status_code=200)
    async def place(self, request: Request, trading: Trading, user_id: str) -> Template:
        form = await request.form()
        inst = trading.instruments.find(str(form.get("symbol") or "")) if form.get("symbol") else None
        order, values, errors = parse_order(form, inst)
        picked = describe(inst) if inst else None
        if picked:
            picked["quote"] = await market_of(trading, user_id, picked["key"])
        if order is None:
            return entry(request, values=values, errors=errors, picked=picked)
        try:
            result = await trading.place_order(user_id, order)
        except TradingError as e:  # risk's refusal, in words, next to the field it is about
            field = e.field if e.field in FIELDS else ("lots" if e.field == "quantity" else "form")
            return entry(request, values=values, errors={field: e.message}, picked=picked)
        return entry(request, BOTH_CHANGED, values=values, picked=picked, placed=result)

    # ---- a row of the order book: the form and the answers above the book (#order-action) ----------

    @get("/ui/orders/{tag:str}/modify")
    async def modify_form(self, request: Request, tag: str, quantity: int = 0, price: str = "", trigger: str = "",
                          order_type: str = "", label: str = "") -> Template:
        values = {"quantity": str(quantity or ""), "price": price, "trigger_price": trigger, "order_type": order_type}
        return partial("order_modify", request, tag=tag, label=label, values=values, errors={})

    @get("/ui/orders/action/close")
    async def close_action(self) -> str:
        return ""

    @post("/ui/orders/{tag:str}/modify", status_code=200)
    async def modify(self, request: Request, trading: Trading, user_id: str, tag: str) -> Template:
        form = await request.form()
        values = {k: str(form.get(k) or "").strip() for k in ("quantity", "price", "trigger_price", "order_type")}
        label = str(form.get("label") or "")
        changes, errors = {}, {}
        if values["quantity"]:
            if values["quantity"].isdigit() and int(values["quantity"]) > 0:
                changes["quantity"] = int(values["quantity"])
            else:
                errors["quantity"] = "quantity: a whole number above zero"
        for name in ("price", "trigger_price"):
            paise = rupees(values[name], name, errors, tick=None)
            if paise is not None:
                changes[name] = paise
        if not errors and not changes:
            errors["price"] = "change the quantity, the price or the trigger"
        if not errors:
            try:
                await trading.modify_order(user_id, tag, **changes)
            except TradingError as e:  # the broker's words; a trigger it refuses goes next to the trigger
                field = e.field if e.field in values else "trigger_price" if "trigger" in e.message.lower() else "price"
                errors = {field: e.message}
        if errors:
            return partial("order_modify", request, tag=tag, label=label, values=values, errors=errors)
        return partial("order_note", request, ORDERS_CHANGED, tag=tag, label=label,
                       note="modification sent; its row follows the broker's answer.")

    @post("/ui/orders/{tag:str}/cancel", status_code=200)
    async def cancel(self, request: Request, trading: Trading, user_id: str, tag: str, label: str = "") -> Template:
        _, error = await attempt(trading.cancel_order(user_id, tag))
        return partial("order_note", request, None if error else ORDERS_CHANGED, tag=tag, label=label,
                       note=error or "cancel sent; its row follows the broker's answer.", error=bool(error))

    # ---- the operator's big buttons ---------------------------------------------------------

    @post("/ui/halt", status_code=200)
    async def halt(self, request: Request, trading: Trading, user_id: str) -> Template:
        _, error = await attempt(trading.halt(user_id, "halted from the dashboard"))
        context = await risk_context(trading, user_id)
        context["control_note"] = "" if error else "Halted: new entries are refused; stop-losses stay at the broker."
        context["risk_error"] = error or context["risk_error"]
        return partial("risk", request, STATUS_CHANGED, **context)

    @post("/ui/square-off", status_code=200)
    async def square_off(self, request: Request, trading: Trading, user_id: str) -> Template:
        # the kill switch's reason reads "square off all: from the dashboard"
        result, error = await attempt(trading.square_off(user_id, "from the dashboard"))
        context = await risk_context(trading, user_id)
        if result is not None:
            closing = {(p["strategy_id"], p["tradingsymbol"]) for p in result.get("placed", [])}
            halted = "trading halted, " if result.get("kill_switch") == "HALTED" else ""
            context["control_note"] = (
                f"Square off all: {halted}{result.get('cancelled', 0)} open order(s) cancelled, {len(closing)} "
                f"position{'' if len(closing) == 1 else 's'} being closed."
                + (" New entries stay off until you reset the kill switch." if halted else ""))
        context["risk_error"] = error or context["risk_error"]
        return partial("risk", request, BOTH_CHANGED, **context)
