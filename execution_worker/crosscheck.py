"""kta's positions against the broker's, every positions pass. Expired options and futures are settled first
(``ExerciseHandler.settle`` books the closing trade at the settlement value, on the expiry day: the contract is
known from the journal once it has left the day's instrument list, remembered when kta's order on it was placed);
any other difference — Kite's MIS auto square-off, a trade placed in Kite by hand — is adopted as an
external fill once it has been seen twice in a row (the same quantities on both sides) with a whole
reconciliation in between and no kta order on the instrument owing the journal a fill (so a fill merely on
its way is never taken for one). Each is journaled,
raised as a risk event and an alert, and told to the strategy whose position it moved."""

from __future__ import annotations

import logging
import time
from datetime import date

from execution_worker import closed_day, fill_journal
from execution_worker.alerts import alert
from execution_worker.engine import Desk
from execution_worker.exercise import ExerciseHandler, OptionContract
from execution_worker.reconcile import EXPIRED_UNLISTED
from shared import ist
from shared.market_calendar import CALENDAR
from shared import messages as m
from shared.kite import errors
from shared.trading.external import Difference, allocate, differences
from shared.kite.models import Instrument
from shared.trading.greeks import spot_key
from shared.trading.order import Order, OrderState
from shared.trading.protection import position_key

log = logging.getLogger("kta.crosscheck")


class CrossCheck:
    def __init__(self, desk: Desk, exerciser: ExerciseHandler) -> None:
        self.desk = desk
        self.exerciser = exerciser
        self.seen: dict[tuple[str, str, str], tuple[int, int]] = {}  # difference -> (kta, broker) at the last pass
        self.last_pass = 0.0  # monotonic

    async def run(self, broker: list[m.Position]) -> list[dict]:
        """Adopt what the broker changed; returns the external fills journaled. A difference is adopted
        when the last pass saw the very same one — the same quantity in kta's book and at the broker,
        not merely the same gap (two fills of kta's own in flight at two passes in a row, each already
        at the broker and not yet heard, leave equal gaps between different books) — a whole
        reconciliation (every kta order and its fills read from the broker) has run since, and no kta
        order on the instrument owes the journal a fill."""
        self._remember_contracts()
        await self._settle_expired(broker)
        adopted = []
        try:
            holdings = await self._holdings(broker)
        except errors.KiteError as e:
            log.info("cross-check waits: holdings unread (%s)", e, extra={"user_id": self.desk.user_id})
            return adopted
        unheard: dict[tuple[str, str, str], int] = {}
        for o in self._unheard():
            key = (o.exchange, o.tradingsymbol, o.product or "MIS")
            unheard[key] = unheard.get(key, 0) + o.sign * (o.quantity - o.fill_quantity)
        diffs = differences(self.desk.tracker.positions(), broker, holdings, unheard)
        now = {(d.exchange, d.tradingsymbol, d.product): (d.kta, d.broker) for d in diffs}
        reconciled = self.desk.reconciled_at > self.last_pass
        for d in diffs:
            key = (d.exchange, d.tradingsymbol, d.product)
            if not reconciled or self.seen.get(key) != (d.kta, d.broker) or self._owed(d):
                continue
            row = {p.tradingsymbol: p for p in broker}.get(d.tradingsymbol)
            rest = await self._fill_unheard(d, row)
            if rest is not None and not (d.product == "CNC" and rest.delta > 0):  # (more shares: the trader's own)
                adopted += await self._adopt(rest, row)
        self.seen, self.last_pass = now, time.monotonic()
        if self.desk.protector is not None and self.desk.protector.in_doubt:
            differing = {(d.exchange, d.tradingsymbol) for d in differences(self.desk.tracker.positions(), broker,
                                                                             holdings)}
            await self.desk.protector.confirmed(self.desk.protector.in_doubt - differing)
        return adopted

    async def _holdings(self, broker: list[m.Position]) -> dict[tuple[str, str], int] | None:
        """The account's holdings (settled + T1) when kta or the broker has a CNC position (a carried
        delivery position lives there), else None (not read)."""
        if not any(p.product == "CNC" and p.quantity for p in [*self.desk.tracker.positions(), *broker]):
            return None
        return {(h.exchange, h.tradingsymbol): h.quantity + h.t1_quantity for h in await self.desk.client.holdings()}

    def _owed(self, d: Difference) -> bool:
        """A kta order on the instrument whose fills the broker reports and the journal lacks, one whose
        submit has no answer yet (the broker may have filled it already), or one of a closed day still working
        in kta's book (reconciliation has yet to expire it: what filled of it is then ``_fill_unheard``'s)."""
        today = self.desk.journal.today()
        return any(o.instrument == (d.exchange, d.tradingsymbol)
                   and (o.unjournaled or o.state in (OrderState.SUBMITTING, OrderState.UNKNOWN)
                        or (not o.is_terminal and o.day and o.day < today))
                   for o in self.desk.book)

    def _unheard(self) -> list[Order]:
        """kta's orders that reconciliation expired with their day (gone from the broker's book, last heard working)
        with quantity kta never heard filled: it may have filled while kta was not listening (the worker down over
        the close), and the broker's books that said so are gone with the day."""
        today = self.desk.journal.today()
        # (not MIS: the broker squares intraday positions off at the close, so a next day's MIS difference is never
        # an unheard fill — an expired MIS stop would otherwise be credited with the broker's square-off)
        return [o for o in self.desk.book if o.state is OrderState.CANCELLED and o.status_message == EXPIRED_UNLISTED
                and o.order_id and o.day and o.day < today and o.quantity > o.fill_quantity and o.product != "MIS"]

    async def _fill_unheard(self, d: Difference, row: m.Position | None) -> Difference | None:
        """What of ``d`` kta's own unheard orders account for, journaled as theirs: the order's fills (its tag,
        its strategy; told to the strategy, its protection synced), up to each order's unfilled quantity, on
        its side. Returns the rest of the difference (None: nothing left).

        Approximate, as the broker's record of the order is gone with its day: the quantity is the broker's
        (its positions / holdings now), the price is what kta heard the order fill at so far (its average), else
        its limit price, else the instrument's last close; the fill is stamped with the order's last exchange
        time (its day: the day it filled). Not seen at all: an MIS order's unheard rest — the broker squared the
        position off at the close and the day's positions that showed both are gone (the square-off of what kta
        heard is adopted; the round trip of the rest, and its P&L, are missing from the journal). While Kite's day
        is still readable none of this runs: reconciliation reads the order's own history and trades (exact)."""
        left = d.delta
        for order in self._unheard():
            if (order.exchange, order.tradingsymbol, order.product or "MIS") != (d.exchange, d.tradingsymbol, d.product) \
                    or order.sign * left <= 0:
                continue
            quantity = min(abs(left), order.quantity - order.fill_quantity)
            journaled = sum(t["price"] * t["quantity"] for t in self.desk.journal.trades_of_order(order.order_id)
                            if t["trade_id"] in order.trade_ids)
            value = closed_day.unheard_value(order, quantity, journaled)
            if value is None:
                value = (order.price or (await self._price(d, row))[0]) * quantity
            price = round(value / quantity)
            fills = closed_day.fills_worth(order, quantity, value,
                                           f"unheard:{{order_id}}:{order.fill_quantity + quantity}:{{price}}")
            await fill_journal.journal_trades(self.desk, order, fills)
            left -= order.sign * quantity
            what = (f"{order.transaction_type} {quantity} of order {order.order_id} filled after kta last heard it "
                    f"({order.fill_quantity - quantity} filled then), while it was not listening over its day's close")
            self.desk.journal.record_risk_event(self.desk.user_id, code="UNHEARD_FILL", message=(
                f"{d.tradingsymbol}: {what}; journaled for {order.strategy_id or 'the account'} at "
                f"{m.format_inr(price)} (the broker's day is gone: the price is approximate)"))
            await alert(self.desk.bus, self.desk.user_id, "external_fill",
                        f"{d.tradingsymbol}: an order filled while kta was not listening",
                        f"{what}: journaled for {order.strategy_id or 'the account'} at about {m.format_inr(price)}",
                        severity="warning", key=f"unheard:{fills[-1].trade_id}", clock=self.desk.exchange)
            log.warning("unheard fill: %s %s", d.tradingsymbol, what, extra={"user_id": self.desk.user_id})
            if self.desk.protector is not None and order.strategy_id:  # the stop follows the whole position
                await self.desk.protector.sync(position_key(order.strategy_id, d.exchange, d.tradingsymbol))
        if left == d.delta:
            return d
        return Difference(exchange=d.exchange, tradingsymbol=d.tradingsymbol, product=d.product, kta=d.broker - left,
                          broker=d.broker) if left else None

    def _busy(self, exchange: str, symbol: str) -> bool:
        """A kta order on the instrument not final in kta's book, or owing the journal a fill: the broker
        may have filled it already (settlement has no second look to wait for, as a difference has)."""
        return any(o.instrument == (exchange, symbol) and (o.unjournaled or not o.is_terminal) for o in self.desk.book)

    def _remember_contracts(self) -> None:
        """Journal the derivatives kta holds while the day's list has them: its orders' are from their placing
        (``Desk.remember_contract``), what was adopted or journaled before from here."""
        for p in self.desk.tracker.positions():
            if p.quantity:
                self.desk.remember_contract(p.exchange, p.tradingsymbol)

    def _contract(self, exchange: str, symbol: str) -> Instrument | None:
        """The instrument: the day's list, else (an expired contract, gone from it) the journal's."""
        return self.desk.inst(exchange, symbol) or self.desk.journal.contract(exchange, symbol)

    def unsettled(self, day: str) -> bool:
        """kta holds a contract that expired on or before ``day`` (its settlement not booked yet)."""
        return any(p.quantity and (inst := self._contract(p.exchange, p.tradingsymbol)) is not None
                   and inst.expiry is not None and inst.expiry.isoformat() <= day
                   for p in self.desk.tracker.positions())

    async def _settle_expired(self, broker: list[m.Position]) -> None:
        """Option and future positions kta holds that the broker no longer lists, whose expiry's close has
        passed (by the exchange's clock: the time of the underlying's quote), are settled at the underlying's
        close of that day (the last price on expiry day itself, the previous close on a later one): an option
        at its intrinsic value, a future at the close itself (its final settlement price), as Kite does."""
        at_broker = {(p.exchange, p.tradingsymbol) for p in broker if p.quantity}
        # a kta order on it still owing the journal a fill (an exit the broker filled, not yet heard) is why
        # the broker no longer lists it, not an expiry
        held = [p for p in self.desk.tracker.positions() if p.quantity and (p.exchange, p.tradingsymbol) not in at_broker
                and not self._busy(p.exchange, p.tradingsymbol)]
        contracts = {p.tradingsymbol: OptionContract.from_instrument(inst) for p in held
                     if (inst := self._contract(p.exchange, p.tradingsymbol)) is not None and inst.expiry is not None
                     and inst.instrument_type in ("CE", "PE", "FUT")}
        if not contracts:
            return
        underlyings = sorted({c.underlying for c in contracts.values()})
        try:
            quotes = await self.desk.client.quote(*(spot_key(u) for u in underlyings))
        except errors.KiteError as e:
            log.warning("expiry settlement waits: spot quotes unread (%s)", e, extra={"user_id": self.desk.user_id})
            return
        spots = {u: q for u in underlyings if (q := quotes.get(spot_key(u))) is not None}
        # the exchange's clock, not this machine's: a paper broker's day runs at its own pace (and a machine
        # clock past 15:30 once settled a condor's wing as expired worthless at 09:49 on its expiry day)
        stamps = [ist.parse(q.timestamp) for q in spots.values() if q.timestamp]
        now = max(stamps) if stamps else self.desk.exchange.now()
        today = ist.day(now)
        for expiry in sorted({c.expiry for c in contracts.values()}):
            closes = {u: m.to_paise(q.last_price if expiry == today else (q.ohlc.close or q.last_price))
                      for u, q in spots.items()}
            due = [p for p in held if p.tradingsymbol in contracts and contracts[p.tradingsymbol].expiry == expiry]
            products = {(p.strategy_id, p.tradingsymbol): p.product for p in due}
            for o in self.exerciser.settle(due, contracts, closes, now=ist.now(now)):
                side = m.TransactionType.SELL if o.quantity > 0 else m.TransactionType.BUY
                what = "the final settlement price, the underlying's close" if o.outcome == "settled" else o.outcome
                await self._book(o.strategy_id, o.exchange, o.tradingsymbol, o.instrument_token,
                                 products[(o.strategy_id, o.tradingsymbol)], side,
                                 abs(o.quantity), o.settlement_price, f"expiry settlement: {what} ({o.settlement})",
                                 o.order_id, o.trade_id, journaled=True)

    async def _adopt(self, d: Difference, row: m.Position | None) -> list[dict]:
        mine = [p for p in self.desk.tracker.positions()
                if (p.exchange, p.tradingsymbol, p.product or "MIS") == (d.exchange, d.tradingsymbol, d.product)]
        holders = {p.strategy_id: p.quantity for p in mine}
        inst = self._contract(d.exchange, d.tradingsymbol)
        # a contract in no list and not journaled (a position older than its orders' remembering), and the broker's
        # positions no longer show it: its token is the one kta's position has (the strategy finds its leg by it)
        token = row.instrument_token if row else inst.instrument_token if inst else \
            next((p.instrument_token for p in mine if p.instrument_token), 0)
        price, when = await self._price(d, row)
        if inst is not None and inst.expiry is not None and inst.expiry < date.fromisoformat(self.desk.exchange.day()):
            reason = "expiry settlement"
        elif d.product == "MIS" and d.broker == 0 and (not when or self._after_square_off(when, d.exchange)):
            reason = "the broker's MIS auto square-off"
        else:
            reason = "a trade outside kta (placed in Kite) or a broker adjustment"
        stamp = time.time_ns()
        out = []
        for strategy_id, qty in allocate(d.delta, holders):
            side = m.TransactionType.BUY if qty > 0 else m.TransactionType.SELL
            order_id = f"external:{strategy_id}:{d.exchange}:{d.tradingsymbol}:{stamp}"
            out.append(await self._book(strategy_id, d.exchange, d.tradingsymbol, token, d.product, side, abs(qty),
                                        price, reason, order_id, f"EXT{stamp}"))
        return out

    @staticmethod
    def _after_square_off(when: str, exchange: str) -> bool:
        """``when`` (a broker timestamp, IST) is within Kite's MIS square-off window of its day."""
        at = ist.now(ist.parse(when))
        return at >= CALENDAR.mis_square_off(at.date(), exchange)

    async def _price(self, d: Difference, row: m.Position | None) -> tuple[int, str]:
        """(price, when): the untagged trades of the day at the broker for the instrument (and the time
        of the last), else its last price (and "")."""
        side = "BUY" if d.delta > 0 else "SELL"
        try:
            trades = [t for t in await self.desk.client.trades()
                      if t.tradingsymbol == d.tradingsymbol and t.transaction_type == side
                      and self.desk.book.by_order_id(t.order_id) is None]
        except errors.KiteError:
            trades = []
        if trades:
            price = sum(m.to_paise(t.average_price) * t.quantity for t in trades) / sum(t.quantity for t in trades)
            return round(price), max(t.fill_timestamp or "" for t in trades)
        if row is not None and row.last_price:
            return row.last_price, ""
        key = f"{d.exchange}:{d.tradingsymbol}"
        if row is None:  # gone from the day's positions: squared off / settled at the last session's close
            try:
                q = (await self.desk.client.ohlc(key)).get(key)
                if q is not None and q.ohlc.close:
                    return m.to_paise(q.ohlc.close), ""
            except errors.KiteError as e:
                log.warning("the close of %s unread (%s): its last price instead", key, e)
        return (await self.desk.prices.prices(self.desk.client, [key])).get(key, 0), ""

    async def _book(self, strategy_id: str, exchange: str, symbol: str, token: int, product: str,
                    side: m.TransactionType, quantity: int, price: int, reason: str, order_id: str, trade_id: str,
                    journaled: bool = False) -> dict:
        desk = self.desk
        stamp = ist.stamp(int(desk.exchange.now()))  # the exchange's time: a paper broker's day is not the machine's
        if not journaled:
            desk.remember_contract(exchange, symbol)
            desk.journal.record_trade(desk.user_id, trade_id=trade_id, order_id=order_id, exchange=exchange,
                                      tradingsymbol=symbol, instrument_token=token, transaction_type=side.value,
                                      quantity=quantity, price=price, fill_timestamp=stamp, product=product,
                                      strategy_id=strategy_id)
            desk.journal.record_risk_event(desk.user_id, code="EXTERNAL_FILL",
                                           message=f"{symbol}: {side} {quantity} at {m.format_inr(price)} adopted "
                                                   f"for {strategy_id or 'the account'}: {reason}")
        desk.tracker.on_fill(strategy_id=strategy_id, exchange=exchange, tradingsymbol=symbol, transaction_type=side,
                             quantity=quantity, price=price, instrument_token=token, product=product, timestamp=stamp)
        await desk.outcomes.emit(f"external:{order_id}", kind="external", strategy_id=strategy_id,
                                 order_kind="external", exchange=exchange, tradingsymbol=symbol,
                                 instrument_token=token, transaction_type=side, quantity=quantity, price=price,
                                 trade_id=trade_id, reason=reason)
        title = "settled at its expiry" if reason.startswith("expiry settlement") else \
            "the broker's position changed outside kta"
        await alert(desk.bus, desk.user_id, "external_fill", f"{symbol}: {title}",
                    f"{side} {quantity} at {m.format_inr(price)} for {strategy_id or 'the account'}: {reason}",
                    severity="warning", key=f"external:{order_id}", clock=desk.exchange)
        log.warning("external fill %s %s %s at %s for %r: %s", symbol, side, quantity, price, strategy_id, reason,
                    extra={"user_id": desk.user_id})
        if desk.on_fills is not None:
            await desk.on_fills(desk)
        if desk.protector is not None and strategy_id:  # its stop now follows what is left (none: cancelled)
            await desk.protector.sync(position_key(strategy_id, exchange, symbol))
        return {"strategy_id": strategy_id, "tradingsymbol": symbol, "transaction_type": side.value,
                "quantity": quantity, "price": price, "reason": reason}
