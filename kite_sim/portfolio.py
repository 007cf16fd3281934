"""Kite's portfolio and funds views of an account: positions (net and day), holdings, margins and the
order-margin calculator, in Kite's JSON shapes (rupees)."""

from __future__ import annotations

from kite_sim import contract_note, risk
from kite_sim.depository import isin_of
from kite_sim.market import Market
from kite_sim.orders import Account, KiteError, PositionBook, paise, rupees


def _avg(value: int, qty: int) -> int:
    return value // qty if qty else 0


def position_row(market: Market, token: int, product: str, pb: PositionBook) -> dict:
    inst = market.universe.by_token[token]
    q = market.quote(inst)
    qty = pb.quantity
    ltp = paise(q.last_price)
    realised, unrealised = risk.split_pnl(pb, ltp)
    pnl = realised + unrealised  # since cost
    marked = pb.marked()
    m2m = marked.sell_value - marked.buy_value + qty * ltp  # since the previous close
    buy_avg, sell_avg = _avg(pb.buy_value, pb.buy_quantity), _avg(pb.sell_value, pb.sell_quantity)
    avg = buy_avg if qty > 0 else sell_avg if qty < 0 else 0
    return {
        "tradingsymbol": inst.tradingsymbol, "exchange": inst.exchange, "instrument_token": token,
        "product": product, "quantity": qty, "overnight_quantity": pb.overnight_quantity, "multiplier": 1,
        "average_price": rupees(avg), "close_price": q.close, "last_price": q.last_price,
        "value": rupees(pb.sell_value - pb.buy_value), "pnl": rupees(pnl), "m2m": rupees(m2m),
        "unrealised": rupees(unrealised), "realised": rupees(realised),
        "buy_quantity": pb.buy_quantity, "buy_price": rupees(buy_avg), "buy_value": rupees(pb.buy_value),
        "buy_m2m": rupees(marked.buy_value), "sell_quantity": pb.sell_quantity, "sell_price": rupees(sell_avg),
        "sell_value": rupees(pb.sell_value), "sell_m2m": rupees(marked.sell_value),
        "day_buy_quantity": 0, "day_buy_price": 0.0, "day_buy_value": 0.0,
        "day_sell_quantity": 0, "day_sell_price": 0.0, "day_sell_value": 0.0,
    }


def positions(market: Market, acc: Account) -> dict:
    """``net`` includes quantity carried overnight (at its cost: ``pnl`` since cost, ``m2m`` since the previous
    close, as Kite's positions mock shows); ``day`` only today's."""
    net, day = [], []
    for (token, product), pb in acc.positions.items():
        today = pb.today()
        row = position_row(market, token, product, pb)
        row.update({"day_buy_quantity": today.buy_quantity, "day_buy_price": rupees(_avg(today.buy_value, today.buy_quantity)),
                    "day_buy_value": rupees(today.buy_value), "day_sell_quantity": today.sell_quantity,
                    "day_sell_price": rupees(_avg(today.sell_value, today.sell_quantity)),
                    "day_sell_value": rupees(today.sell_value)})
        net.append(row)
        if today.buy_quantity or today.sell_quantity:
            day.append({**position_row(market, token, product, today), **{k: row[k] for k in row if k.startswith("day_")}})
    return {"net": net, "day": day}


def holdings(market: Market, acc: Account) -> list[dict]:
    dep = acc.depository
    dep.roll(market.clock.today().isoformat())
    out = []
    for token, h in acc.holdings.items():
        inst = market.universe.by_token[token]
        q = market.quote(inst)
        avg = h.average / 100
        today = acc.positions.get((token, "CNC"))  # CNC positions are the day's: delivered at the close
        used = min(h.total, max(0, -today.quantity)) if today else 0  # holdings sold today (net of today's buys)
        out.append({
            "tradingsymbol": inst.tradingsymbol, "exchange": inst.exchange, "instrument_token": token,
            "isin": isin_of(token), "product": "CNC", "price": 0, "quantity": h.quantity,
            "used_quantity": used, "t1_quantity": h.t1_quantity, "realised_quantity": h.quantity,
            "authorised_quantity": dep.authorised.get(token, 0),
            "authorised_date": f"{dep.day} 00:00:00" if token in dep.authorised else "", "authorisation": {},
            "opening_quantity": h.quantity,
            "short_quantity": 0, "collateral_quantity": 0, "collateral_type": "", "discrepancy": False,
            "average_price": rupees(h.average), "last_price": q.last_price, "close_price": q.close,
            "pnl": round((q.last_price - avg) * h.total, 2), "day_change": round(q.last_price - q.close, 2),
            "day_change_percentage": round((q.last_price - q.close) / q.close * 100, 4) if q.close else 0,
            "mtf": {"quantity": 0, "used_quantity": 0, "average_price": 0, "value": 0, "initial_margin": 0},
        })
    return out


def margins(market: Market, acc: Account) -> dict:
    used = risk.utilised(market, acc)
    realised, unrealised = risk.pnl(market, acc)
    opening = acc.opening_balance
    net = opening + realised + unrealised - used
    equity = {
        "enabled": True, "net": rupees(net),
        "available": {"adhoc_margin": 0, "cash": rupees(opening), "opening_balance": rupees(opening),
                      "live_balance": rupees(net), "collateral": 0, "intraday_payin": 0},
        "utilised": {"debits": rupees(used), "exposure": 0, "m2m_realised": rupees(realised),
                     "m2m_unrealised": rupees(unrealised), "option_premium": 0, "payout": 0,
                     "span": rupees(used), "holding_sales": 0, "turnover": 0, "liquid_collateral": 0,
                     "stock_collateral": 0, "delivery": 0},
    }
    commodity = {**equity, "enabled": False, "net": 0,
                 "available": {k: 0 for k in equity["available"]}, "utilised": {k: 0 for k in equity["utilised"]}}
    return {"equity": equity, "commodity": commodity}


def order_margin(market: Market, spec: dict) -> dict:
    inst = market.universe.find(f"{spec.get('exchange')}:{spec.get('tradingsymbol')}")
    if inst is None:
        raise KiteError("Invalid `tradingsymbol`.")
    try:
        qty = int(spec.get("quantity") or 0)
        px = paise(float(spec.get("price") or 0)) or paise(market.price(inst))
    except (TypeError, ValueError):
        raise KiteError("Invalid `quantity` or `price`.") from None
    product, side = spec.get("product", "MIS"), spec.get("transaction_type", "BUY")
    m = risk.margin_for(market, inst, product, qty, px, side)
    costs = contract_note.charges(market, inst, product, side, qty, px / 100) if qty > 0 else contract_note.empty()
    return {"type": "equity", "tradingsymbol": inst.tradingsymbol, "exchange": inst.exchange,
            "span": rupees(m) if inst.instrument_type != "EQ" else 0, "exposure": 0,
            "option_premium": rupees(qty * px) if inst.instrument_type in ("CE", "PE") else 0, "additional": 0,
            "bo": 0, "cash": 0, "var": rupees(m) if inst.instrument_type == "EQ" else 0,
            "pnl": {"realised": 0, "unrealised": 0}, "leverage": 1, "charges": costs, "total": rupees(m)}


def basket_margin(market: Market, acc: Account, body: list[dict], consider_positions: bool) -> tuple[list[dict], float]:
    """``POST /margins/basket``: each order's own margin, and what the basket needs together (rupees): its F&O
    legs margined as one portfolio (``risk.derivatives_margin``) — with the account's F&O positions when
    ``consider_positions``, counting only what the basket adds — plus its other orders' own margins."""
    orders = [order_margin(market, o) for o in body]
    legs, other = [], 0.0
    for spec, margin in zip(body, orders):
        inst = market.universe.find(f"{spec.get('exchange')}:{spec.get('tradingsymbol')}")
        if inst.instrument_type in risk.DERIVATIVES:
            qty = int(spec.get("quantity") or 0)
            legs.append((inst, qty if spec.get("transaction_type", "BUY") == "BUY" else -qty))
        else:
            other += margin["total"]
    held = risk.derivative_legs(market, acc)[0] if consider_positions else []
    added = risk.derivatives_margin(market, held + legs) - risk.derivatives_margin(market, held)
    return orders, round(max(0, added) / 100 + other, 2)

