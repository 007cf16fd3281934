"""Order matching, trades, positions and margins of the paper broker.

Orders follow Kite's status sequence (PUT ORDER REQ RECEIVED → VALIDATION PENDING → OPEN PENDING →
OPEN / TRIGGER PENDING → COMPLETE / CANCELLED / REJECTED), kept as history rows. Fills walk the
simulated depth, so a large order fills partially and stays OPEN until the book refills. Money is
integer paise inside; the REST layer shows rupees like Kite.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from kite_sim.faults import Faults
from kite_sim.instruments import Instrument
from kite_sim.market import Market

log = logging.getLogger("kite_sim.broker")

TERMINAL = {"COMPLETE", "CANCELLED", "REJECTED"}
MAX_MODIFICATIONS = 25


class OrderError(Exception):
    """Raised for requests Kite refuses synchronously (HTTP 4xx)."""

    def __init__(self, message: str, error_type: str = "InputException", status: int = 400) -> None:
        super().__init__(message)
        self.message, self.error_type, self.status = message, error_type, status


def paise(rupees: float) -> int:
    return int(round(rupees * 100))


def rupees(p: int) -> float:
    return round(p / 100, 2)


@dataclass
class Order:
    order_id: str
    user_id: str
    variety: str
    inst: Instrument
    transaction_type: str
    order_type: str
    product: str
    quantity: int
    price: int  # paise
    trigger_price: int
    validity: str
    tag: str | None
    market_protection: float
    status: str = "PUT ORDER REQ RECEIVED"
    status_message: str | None = None
    filled_quantity: int = 0
    filled_value: int = 0  # paise * qty
    cancelled_quantity: int = 0
    order_timestamp: str = ""
    exchange_timestamp: str | None = None
    exchange_order_id: str | None = None
    modifications: int = 0
    history: list[dict] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    partial_then_cancel: bool = False

    @property
    def pending_quantity(self) -> int:
        return self.quantity - self.filled_quantity - self.cancelled_quantity if self.status not in TERMINAL else 0

    @property
    def average_price(self) -> int:
        return self.filled_value // self.filled_quantity if self.filled_quantity else 0

    def as_kite(self, user_id: str) -> dict:
        return {
            "account_id": user_id, "placed_by": user_id, "order_id": self.order_id,
            "exchange_order_id": self.exchange_order_id, "parent_order_id": None, "status": self.status,
            "status_message": self.status_message, "status_message_raw": self.status_message,
            "order_timestamp": self.order_timestamp, "exchange_update_timestamp": self.exchange_timestamp,
            "exchange_timestamp": self.exchange_timestamp, "variety": self.variety, "modified": self.modifications > 0,
            "exchange": self.inst.exchange, "tradingsymbol": self.inst.tradingsymbol,
            "instrument_token": self.inst.instrument_token, "order_type": self.order_type,
            "transaction_type": self.transaction_type, "validity": self.validity, "validity_ttl": 0,
            "product": self.product, "quantity": self.quantity, "disclosed_quantity": 0,
            "price": rupees(self.price), "trigger_price": rupees(self.trigger_price),
            "average_price": rupees(self.average_price), "filled_quantity": self.filled_quantity,
            "pending_quantity": self.pending_quantity, "cancelled_quantity": self.cancelled_quantity,
            "market_protection": self.market_protection, "meta": {}, "tag": self.tag,
            "tags": list(self.tags) + ([self.tag] if self.tag else []), "guid": f"{self.order_id[-8:]}",
        }


@dataclass
class Trade:
    trade_id: str
    order: Order
    quantity: int
    price: int
    timestamp: str

    def as_kite(self) -> dict:
        o = self.order
        return {"trade_id": self.trade_id, "order_id": o.order_id, "exchange_order_id": o.exchange_order_id,
                "exchange": o.inst.exchange, "tradingsymbol": o.inst.tradingsymbol,
                "instrument_token": o.inst.instrument_token, "product": o.product,
                "average_price": rupees(self.price), "quantity": self.quantity,
                "transaction_type": o.transaction_type, "fill_timestamp": self.timestamp,
                "order_timestamp": self.timestamp[11:], "exchange_timestamp": self.timestamp}


@dataclass
class PositionBook:
    buy_quantity: int = 0
    buy_value: int = 0  # paise
    sell_quantity: int = 0
    sell_value: int = 0


@dataclass
class Account:
    user_id: str
    opening_balance: int  # paise
    orders: dict[str, Order] = field(default_factory=dict)
    trades: list[Trade] = field(default_factory=list)
    positions: dict[tuple[int, str], PositionBook] = field(default_factory=dict)
    holdings: dict[int, tuple[int, int]] = field(default_factory=dict)  # token -> (qty, avg paise)


class Broker:
    def __init__(self, market: Market, faults: Faults, on_order_update: Callable[[str, dict], None]) -> None:
        self.market = market
        self.faults = faults
        self.on_order_update = on_order_update
        self.accounts: dict[str, Account] = {}
        self._order_seq = itertools.count(1)
        self._trade_seq = itertools.count(1)
        self._day = market.clock.today()

    def account(self, user_id: str, funds: int = 10_00_000_00) -> Account:
        if user_id not in self.accounts:
            self.accounts[user_id] = Account(user_id, funds)
        return self.accounts[user_id]

    def _new_id(self) -> str:
        return f"{self._day:%y%m%d}{next(self._order_seq):09d}"

    # ---- margins ------------------------------------------------------------------------------

    def _margin_for(self, inst: Instrument, product: str, qty: int, price: int, side: str) -> int:
        value = qty * price
        if inst.instrument_type in ("CE", "PE"):
            if side == "BUY":
                return value
            spot = paise(self.market.spot(inst.underlying))
            return int(qty * spot * 0.12) + value
        if inst.instrument_type == "FUT":
            return int(value * 0.12)
        return value if product == "CNC" and side == "BUY" else int(value * 0.2)

    def utilised(self, acc: Account) -> int:
        used = 0
        for (token, product), pb in acc.positions.items():
            qty = pb.buy_quantity - pb.sell_quantity
            if qty:
                inst = self.market.universe.by_token[token]
                used += self._margin_for(inst, product, abs(qty), paise(self.market.price(inst)),
                                         "BUY" if qty > 0 else "SELL")
        for o in acc.orders.values():
            if o.status in ("OPEN", "TRIGGER PENDING"):
                px = o.price or o.trigger_price or paise(self.market.price(o.inst))
                used += self._margin_for(o.inst, o.product, o.pending_quantity, px, o.transaction_type)
        return used

    def realised_m2m(self, acc: Account) -> tuple[int, int]:
        realised = unrealised = 0
        for (token, _), pb in acc.positions.items():
            pnl = self.position_pnl(token, pb)
            qty = pb.buy_quantity - pb.sell_quantity
            if qty == 0:
                realised += pnl
            else:
                unrealised += pnl
        return realised, unrealised

    def position_pnl(self, token: int, pb: PositionBook) -> int:
        qty = pb.buy_quantity - pb.sell_quantity
        ltp = paise(self.market.price(self.market.universe.by_token[token])) if qty else 0
        return pb.sell_value - pb.buy_value + qty * ltp

    def available(self, acc: Account) -> int:
        realised, unrealised = self.realised_m2m(acc)
        return acc.opening_balance + realised + min(0, unrealised) - self.utilised(acc)

    # ---- orders -------------------------------------------------------------------------------

    def place(self, user_id: str, variety: str, f: dict) -> Order:
        if variety not in ("regular", "amo"):
            raise OrderError(f"Invalid `variety`. {variety} orders are not supported.", "InputException")
        inst = self.market.universe.find(f"{f.get('exchange', '')}:{f.get('tradingsymbol', '')}")
        if inst is None:
            raise OrderError("Invalid `tradingsymbol`.", "InputException")
        if not inst.tradable:
            raise OrderError("Instrument is not tradable.", "InputException")
        tt, ot, product = f.get("transaction_type"), f.get("order_type"), f.get("product")
        if tt not in ("BUY", "SELL"):
            raise OrderError("Invalid `transaction_type`.")
        if ot not in ("MARKET", "LIMIT", "SL", "SL-M"):
            raise OrderError("Invalid `order_type`.")
        if product not in ("CNC", "MIS", "NRML", "MTF"):
            raise OrderError("Invalid `product`.")
        try:
            qty = int(f.get("quantity", 0))
            price = paise(float(f.get("price") or 0))
            trigger = paise(float(f.get("trigger_price") or 0))
            mp = float(f.get("market_protection") or 0)
        except ValueError:
            raise OrderError("Invalid `quantity`, `price` or `trigger_price`.") from None
        validity = f.get("validity") or "DAY"
        if validity not in ("DAY", "IOC", "TTL"):
            raise OrderError("Invalid `validity`.")
        if qty <= 0:
            raise OrderError("Invalid `quantity`.")
        if inst.lot_size > 1 and qty % inst.lot_size:
            raise OrderError(f"Quantity should be a multiple of lot size ({inst.lot_size}).")
        if inst.freeze_quantity and qty > inst.freeze_quantity:
            raise OrderError(f"Quantity exceeds the freeze limit of {inst.freeze_quantity}. Use autoslice or split.")
        if ot in ("LIMIT", "SL") and price <= 0:
            raise OrderError("Invalid `price`.")
        if ot in ("SL", "SL-M") and trigger <= 0:
            raise OrderError("Invalid `trigger_price`.")
        if product == "CNC" and inst.instrument_type != "EQ":
            raise OrderError("CNC is for equity delivery only; use NRML or MIS.")
        tag = f.get("tag") or None
        if tag and len(tag) > 20:
            raise OrderError("Invalid `tag`. Tag length should be less than or equal to 20.")
        if ot == "MARKET" and mp == 0:
            raise OrderError("Market orders without market protection are not allowed via API. "
                             "Set `market_protection`.", "InputException")
        acc = self.account(user_id)
        now = self.market.clock.stamp()
        o = Order(self._new_id(), user_id, variety, inst, tt, ot, product, qty, price, trigger, validity, tag, mp,
                  order_timestamp=now)
        if ot == "MARKET":  # the OMS converts a protected MARKET order into a LIMIT at the protection price
            ltp = paise(self.market.price(inst))
            pct = 2.0 if mp < 0 else mp
            o.order_type = "LIMIT"
            o.price = self._round(inst, ltp * (1 + pct / 100) if tt == "BUY" else ltp * (1 - pct / 100))
            o.tags += ["mktp", f"mktp:{pct:.2f}"]
        acc.orders[o.order_id] = o
        self._history(o, "PUT ORDER REQ RECEIVED")
        self._history(o, "VALIDATION PENDING")
        reason = self.faults.take_reject()
        need = self._margin_for(inst, product, qty, o.price or o.trigger_price or paise(self.market.price(inst)), tt)
        avail = self.available(acc)
        q = self.market.quote(inst)
        if reason:
            self._set(o, "REJECTED", reason)
        elif need > avail and not self._reduces(acc, inst, product, tt, qty):
            self._set(o, "REJECTED", f"Insufficient funds. Required margin is {need / 100:.2f} but available margin "
                                     f"is {avail / 100:.2f}.")
        elif ot in ("LIMIT", "SL") and not (paise(q.lower_circuit) <= o.price <= paise(q.upper_circuit)):
            self._set(o, "REJECTED", f"Your order price is out of the circuit limits "
                                     f"({q.lower_circuit:.2f} - {q.upper_circuit:.2f}).")
        else:
            self._history(o, "OPEN PENDING")
            o.exchange_order_id = f"1{o.order_id[-15:]}"
            o.partial_then_cancel = self.faults.take_partial_then_cancel()
            self._set(o, "TRIGGER PENDING" if ot in ("SL", "SL-M") else "OPEN")
            self.match(o)
        return o

    def _reduces(self, acc: Account, inst: Instrument, product: str, side: str, qty: int) -> bool:
        pb = acc.positions.get((inst.instrument_token, product))
        held = (pb.buy_quantity - pb.sell_quantity) if pb else 0
        return (side == "SELL" and 0 < qty <= held) or (side == "BUY" and 0 < qty <= -held)

    def _round(self, inst: Instrument, p: float) -> int:
        tick = paise(inst.tick_size) or 5
        return int(round(p / tick)) * tick

    def modify(self, user_id: str, variety: str, order_id: str, f: dict) -> Order:
        o = self._get(user_id, order_id)
        if o.status in TERMINAL:
            raise OrderError(f"Order cannot be modified as it is {o.status.lower()}.", "InputException")
        if o.status not in ("OPEN", "TRIGGER PENDING"):
            raise OrderError("Order cannot be modified as it is being processed. Try later.", "InputException")
        if o.modifications >= MAX_MODIFICATIONS:
            raise OrderError("Maximum allowed order modifications exceeded.", "InputException")
        try:
            if f.get("quantity"):
                qty = int(f["quantity"])
                if qty < o.filled_quantity or (o.inst.lot_size > 1 and qty % o.inst.lot_size):
                    raise OrderError("Invalid `quantity`.")
                o.quantity = qty
            if f.get("price"):
                o.price = paise(float(f["price"]))
            if f.get("trigger_price"):
                o.trigger_price = paise(float(f["trigger_price"]))
        except ValueError:
            raise OrderError("Invalid `price` or `quantity`.") from None
        if f.get("order_type") in ("LIMIT", "SL", "SL-M"):
            o.order_type = f["order_type"]
        o.modifications += 1
        self._history(o, "MODIFY VALIDATION PENDING")
        self._history(o, "MODIFY PENDING")
        self._history(o, "MODIFIED")
        self._set(o, "TRIGGER PENDING" if o.order_type in ("SL", "SL-M") and o.status == "TRIGGER PENDING" else "OPEN")
        self.match(o)
        return o

    def cancel(self, user_id: str, variety: str, order_id: str) -> Order:
        o = self._get(user_id, order_id)
        if o.status in TERMINAL:
            raise OrderError(f"Order cannot be cancelled as it is {o.status.lower()}.", "InputException")
        self._history(o, "CANCEL PENDING")
        o.cancelled_quantity = o.quantity - o.filled_quantity
        self._set(o, "CANCELLED", "Cancelled by user")
        return o

    def _get(self, user_id: str, order_id: str) -> Order:
        o = self.account(user_id).orders.get(order_id)
        if o is None:
            raise OrderError("Couldn't find that `order_id`.", "InputException", 400)
        return o

    def _history(self, o: Order, status: str, message: str | None = None) -> None:
        o.status = status
        o.status_message = message
        o.history.append(o.as_kite(o.user_id))

    def _set(self, o: Order, status: str, message: str | None = None) -> None:
        o.exchange_timestamp = self.market.clock.stamp()
        self._history(o, status, message)
        log.info("order %s %s %s %s x%d %s", o.order_id, o.status, o.transaction_type, o.inst.tradingsymbol,
                 o.quantity, message or "", extra={"user_id": o.user_id, "tag": o.tag})
        self.on_order_update(o.user_id, o.as_kite(o.user_id))

    # ---- matching -----------------------------------------------------------------------------

    def match_all(self) -> None:
        if self.faults.hold_fills:
            return
        for acc in self.accounts.values():
            for o in list(acc.orders.values()):
                if o.status in ("OPEN", "TRIGGER PENDING"):
                    self.match(o)

    def match(self, o: Order) -> None:
        if self.faults.hold_fills:
            return
        q = self.market.quote(o.inst)
        ltp = paise(q.last_price)
        if o.status == "TRIGGER PENDING":
            hit = ltp >= o.trigger_price if o.transaction_type == "BUY" else ltp <= o.trigger_price
            if not hit:
                return
            if o.order_type == "SL-M":
                o.price = self._round(o.inst, ltp * (1.02 if o.transaction_type == "BUY" else 0.98))
            self._set(o, "OPEN")
        book = q.depth_sell if o.transaction_type == "BUY" else q.depth_buy
        remaining = o.quantity - o.filled_quantity
        if o.partial_then_cancel:
            remaining = max(1, remaining // 2) if o.inst.lot_size <= 1 else max(
                o.inst.lot_size, (remaining // 2) // o.inst.lot_size * o.inst.lot_size)
        filled_now = 0
        for price_r, qty, _ in book:
            p = paise(price_r)
            if (o.transaction_type == "BUY" and p > o.price) or (o.transaction_type == "SELL" and p < o.price):
                break
            take = min(qty, remaining - filled_now)
            if o.inst.lot_size > 1:
                take -= take % o.inst.lot_size
            if take <= 0:
                break
            self._fill(o, take, p)
            filled_now += take
            if filled_now >= remaining:
                break
        if o.filled_quantity >= o.quantity:
            self._set(o, "COMPLETE")
        elif o.partial_then_cancel and o.filled_quantity:
            o.cancelled_quantity = o.quantity - o.filled_quantity
            self._set(o, "CANCELLED", "Partially filled; remaining quantity cancelled by the exchange")
        elif o.validity == "IOC":
            o.cancelled_quantity = o.quantity - o.filled_quantity
            self._set(o, "CANCELLED", "IOC order cancelled: not filled immediately")
        elif filled_now:
            self._set(o, "OPEN")  # partial fill: Kite keeps the order OPEN with filled_quantity > 0

    def _fill(self, o: Order, qty: int, price: int) -> None:
        acc = self.account(o.user_id)
        o.filled_quantity += qty
        o.filled_value += qty * price
        ts = self.market.clock.stamp()
        acc.trades.append(Trade(f"{next(self._trade_seq):08d}", o, qty, price, ts))
        pb = acc.positions.setdefault((o.inst.instrument_token, o.product), PositionBook())
        if o.transaction_type == "BUY":
            pb.buy_quantity += qty
            pb.buy_value += qty * price
        else:
            pb.sell_quantity += qty
            pb.sell_value += qty * price

    # ---- portfolio views ----------------------------------------------------------------------

    def positions(self, user_id: str) -> dict:
        acc = self.account(user_id)
        rows = []
        for (token, product), pb in acc.positions.items():
            inst = self.market.universe.by_token[token]
            q = self.market.quote(inst)
            qty = pb.buy_quantity - pb.sell_quantity
            ltp = paise(q.last_price)
            pnl = self.position_pnl(token, pb)
            closed = min(pb.buy_quantity, pb.sell_quantity)
            buy_avg = pb.buy_value // pb.buy_quantity if pb.buy_quantity else 0
            sell_avg = pb.sell_value // pb.sell_quantity if pb.sell_quantity else 0
            realised = closed * (sell_avg - buy_avg)
            avg = buy_avg if qty > 0 else sell_avg if qty < 0 else 0
            rows.append({
                "tradingsymbol": inst.tradingsymbol, "exchange": inst.exchange, "instrument_token": token,
                "product": product, "quantity": qty, "overnight_quantity": 0, "multiplier": 1,
                "average_price": rupees(avg), "close_price": q.close, "last_price": q.last_price,
                "value": rupees(pb.sell_value - pb.buy_value), "pnl": rupees(pnl), "m2m": rupees(pnl),
                "unrealised": rupees(pnl - realised), "realised": rupees(realised),
                "buy_quantity": pb.buy_quantity, "buy_price": rupees(buy_avg), "buy_value": rupees(pb.buy_value),
                "buy_m2m": rupees(pb.buy_value), "sell_quantity": pb.sell_quantity, "sell_price": rupees(sell_avg),
                "sell_value": rupees(pb.sell_value), "sell_m2m": rupees(pb.sell_value),
                "day_buy_quantity": pb.buy_quantity, "day_buy_price": rupees(buy_avg),
                "day_buy_value": rupees(pb.buy_value), "day_sell_quantity": pb.sell_quantity,
                "day_sell_price": rupees(sell_avg), "day_sell_value": rupees(pb.sell_value),
            })
            _ = ltp
        return {"net": rows, "day": [dict(r) for r in rows]}

    def holdings(self, user_id: str) -> list[dict]:
        out = []
        for token, (qty, avg) in self.account(user_id).holdings.items():
            inst = self.market.universe.by_token[token]
            q = self.market.quote(inst)
            out.append({
                "tradingsymbol": inst.tradingsymbol, "exchange": inst.exchange, "instrument_token": token,
                "isin": f"INE{token % 1000000:06d}01", "product": "CNC", "price": 0, "quantity": qty,
                "used_quantity": 0, "t1_quantity": 0, "realised_quantity": qty, "authorised_quantity": 0,
                "authorised_date": "", "authorisation": {}, "opening_quantity": qty, "short_quantity": 0,
                "collateral_quantity": 0, "collateral_type": "", "discrepancy": False,
                "average_price": rupees(avg), "last_price": q.last_price, "close_price": q.close,
                "pnl": round((q.last_price - avg / 100) * qty, 2), "day_change": round(q.last_price - q.close, 2),
                "day_change_percentage": round((q.last_price - q.close) / q.close * 100, 4) if q.close else 0,
                "mtf": {"quantity": 0, "used_quantity": 0, "average_price": 0, "value": 0, "initial_margin": 0},
            })
        return out

    def margins(self, user_id: str) -> dict:
        acc = self.account(user_id)
        used = self.utilised(acc)
        realised, unrealised = self.realised_m2m(acc)
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

    def order_margin(self, user_id: str, spec: dict) -> dict:
        inst = self.market.universe.find(f"{spec.get('exchange')}:{spec.get('tradingsymbol')}")
        if inst is None:
            raise OrderError("Invalid `tradingsymbol`.")
        qty = int(spec.get("quantity") or 0)
        px = paise(float(spec.get("price") or 0)) or paise(self.market.price(inst))
        m = self._margin_for(inst, spec.get("product", "MIS"), qty, px, spec.get("transaction_type", "BUY"))
        return {"type": "equity", "tradingsymbol": inst.tradingsymbol, "exchange": inst.exchange,
                "span": rupees(m) if inst.instrument_type != "EQ" else 0, "exposure": 0,
                "option_premium": rupees(qty * px) if inst.instrument_type in ("CE", "PE") else 0, "additional": 0,
                "bo": 0, "cash": 0, "var": rupees(m) if inst.instrument_type == "EQ" else 0,
                "pnl": {"realised": 0, "unrealised": 0}, "leverage": 1,
                "charges": {"transaction_tax": 0, "transaction_tax_type": "stt", "exchange_turnover_charge": 0,
                            "sebi_turnover_charge": 0, "brokerage": 0, "stamp_duty": 0,
                            "gst": {"igst": 0, "cgst": 0, "sgst": 0, "total": 0}, "total": 0},
                "total": rupees(m)}
