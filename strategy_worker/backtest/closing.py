"""The end of a backtest's day on its desk: what the broker and the exchange do at the close — day orders
cancelled, MIS positions squared off, contracts expiring today settled — then tomorrow's stops for what is
carried."""

from __future__ import annotations

from typing import TYPE_CHECKING

from shared import ist
from shared.messages import StrategyOutcome
from shared.trading.book import OrderBook
from shared.trading.planning import tick_paise
from strategy_worker.backtest import expiry

if TYPE_CHECKING:
    from strategy_worker.backtest.desk import Desk


def end_of_day(desk: Desk) -> list[StrategyOutcome]:
    """The broker's intraday square-off: open MIS positions closed at the last price, day orders
    cancelled (Kite's DAY validity), the GTTs of contracts expiring today deleted (gtts.py); then the
    exchange's expiry settlement of what is still held of them (expiry.py)."""
    desk.gtts.expire(desk.day)
    for token in list(desk.resting):
        for r in desk.resting[token].values():
            desk.cancel(r.order, "day order expired at the close")
        desk.resting[token].clear()
        desk.rewake(token)
    desk.book = OrderBook(desk.book.working())  # the day's final orders leave the working book
    out = []
    for (strategy_id, token), qty in list(desk.strategy_qty.items()):
        inst = desk.instruments[token]
        if not qty or desk.product(strategy_id, token) != "MIS":
            continue
        side = "SELL" if qty > 0 else "BUY"
        price = desk.fills.market(side, desk.paise(token), tick_paise(inst), band=desk.band(inst))
        desk.rec.external_order(desk.now, strategy_id, inst, side, abs(qty), price, "MIS square-off")
        out.append(desk.fill(strategy_id, "", "external", inst, side, abs(qty), price, "MIS", "external",
                                    reason="MIS auto square-off at the close"))
    out += settle_expired(desk)
    for token in desk.price:
        desk.prev_close[token] = desk.paise(token)
    for (strategy_id, token), p in list(desk.protections.items()):  # carried positions: tomorrow's stop
        out += desk.sync(p, desk.instruments[token])
    return out


def settle_expired(desk: Desk) -> list[StrategyOutcome]:
    """Contracts expiring today (or before: a day without bars) still held: closed at their final settlement
    price, told to the strategy as the broker's own (``external``) fill, as live adopts it."""
    out = []
    today = ist.now(desk.now).date()
    for (strategy_id, token), qty in list(desk.strategy_qty.items()):
        inst = desk.instruments.get(token)
        if not qty or inst is None or not expiry.expired(inst, today):
            continue
        spot_token = desk.underlyings.get(inst.name)
        spot = desk.paise(spot_token) if spot_token is not None else 0
        price = expiry.settlement_price(inst, spot) if spot else desk.paise(token)
        side, product = "SELL" if qty > 0 else "BUY", desk.product(strategy_id, token)
        desk.rec.external_order(desk.now, strategy_id, inst, side, abs(qty), price, "expiry", product)
        out.append(desk.fill(strategy_id, "", "expiry", inst, side, abs(qty), price, product, "external",
                                    reason=expiry.describe(inst, price),
                                    cost=expiry.settlement_cost(inst, qty, price, today)))
    return out

