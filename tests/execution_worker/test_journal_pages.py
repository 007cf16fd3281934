"""The order and trade books one page at a time from a real SQLite journal: newest first, filters in
SQL, and a keyset cursor under which orders arriving meanwhile never shift or repeat a row."""

from __future__ import annotations

import msgspec
import pytest

from execution_worker.journal import Journal
from execution_worker.journal_pages import CursorError, orders_page, trades_page
from shared import messages as m
from shared.trading.order import Order, OrderState

DAY = "2026-03-02"


@pytest.fixture
def journal(tmp_path):
    j = Journal(tmp_path / "journal.db", clock=lambda: 1772425800.0)  # 2026-03-02 09:60 IST
    yield j
    j.close()


def order(i: int, *, symbol: str = "INFY", strategy: str = "ema-1", state: OrderState = OrderState.COMPLETE,
          second: int | None = None) -> Order:
    return Order(tag=f"t{i:04d}", user_id="AB1234", kind="entry", strategy_id=strategy, exchange="NSE",
                 tradingsymbol=symbol, transaction_type=m.TransactionType.BUY, order_type="MARKET", product="MIS",
                 quantity=1, state=state, status=str(state) if state != OrderState.PLACED else "OPEN",
                 day=DAY, created_ts=f"{DAY} 10:{(second if second is not None else i) // 60:02d}:"
                                    f"{(second if second is not None else i) % 60:02d}")


def test_orders_page_by_page_newest_first_without_shifting(journal):
    for i in range(7):
        journal.save_order(order(i, second=i // 2))  # pairs share a second: the tag breaks the tie
    first = orders_page(journal, "AB1234", limit=3, day=DAY)
    assert [o["tag"] for o in first["items"]] == ["t0006", "t0005", "t0004"] and first["next"]
    for i in range(7, 10):  # new orders arrive while the trader reads page 1
        journal.save_order(order(i, second=30 + i))
    second = orders_page(journal, "AB1234", limit=3, day=DAY, before=first["next"])
    third = orders_page(journal, "AB1234", limit=3, day=DAY, before=second["next"])
    assert [o["tag"] for o in second["items"]] == ["t0003", "t0002", "t0001"]
    assert [o["tag"] for o in third["items"]] == ["t0000"] and third["next"] is None
    assert orders_page(journal, "AB1234", limit=3, day=DAY)["items"][0]["tag"] == "t0009"
    assert orders_page(journal, "OTHER1", limit=3, day=DAY)["items"] == []  # another user's book is empty


def test_orders_of_one_second_list_newest_first_whatever_their_tags(journal):
    for i, tag in enumerate(("Kf000", "K9000", "K0000")):  # an exit, its entry, the entry's stop: tags are random
        journal.save_order(msgspec.structs.replace(order(i, second=5), tag=tag))
    first = orders_page(journal, "AB1234", limit=2, day=DAY)
    rest = orders_page(journal, "AB1234", limit=2, day=DAY, before=first["next"])
    assert [o["tag"] for o in first["items"] + rest["items"]] == ["K0000", "K9000", "Kf000"]
    assert "_seq" not in first["items"][0] and rest["next"] is None


def test_order_filters(journal):
    journal.save_order(order(1, symbol="INFY", strategy="ema-1"))
    journal.save_order(order(2, symbol="TCS", strategy="rsi-2", state=OrderState.PLACED))
    journal.save_order(order(3, symbol="TCS", strategy="manual", state=OrderState.CANCELLED))
    def tags(**kw):
        return [o["tag"] for o in orders_page(journal, "AB1234", limit=10, **{"day": DAY, **kw})["items"]]

    assert tags(status="open") == ["t0002"]
    assert tags(status="cancelled") == ["t0003"] and tags(status="COMPLETE") == ["t0001"]
    assert tags(symbol="tcs") == ["t0003", "t0002"] and tags(strategy_id="rsi-2") == ["t0002"]
    assert tags(day="2026-03-01") == [] and tags(day="all") == ["t0003", "t0002", "t0001"]


def test_trades_page_and_a_forged_cursor(journal):
    for i in range(5):
        journal.record_trade("AB1234", trade_id=f"f{i}", order_id=f"o{i}", exchange="NSE",
                             tradingsymbol="INFY" if i % 2 else "TCS", instrument_token=1,
                             transaction_type="SELL" if i == 4 else "BUY", quantity=1, price=100_00 + i,
                             fill_timestamp=f"{DAY} 10:00:0{i // 2}", strategy_id="ema-1")
    first = trades_page(journal, "AB1234", limit=2, day=DAY)
    rest = trades_page(journal, "AB1234", limit=5, day=DAY, before=first["next"])
    assert [t["trade_id"] for t in first["items"] + rest["items"]] == ["f4", "f3", "f2", "f1", "f0"]
    assert rest["next"] is None and "_row" not in first["items"][0]
    assert [t["trade_id"] for t in trades_page(journal, "AB1234", limit=9, day=DAY, side="SELL")["items"]] == ["f4"]
    assert [t["trade_id"] for t in trades_page(journal, "AB1234", limit=9, day=DAY, symbol="infy")["items"]] == [
        "f3", "f1"]
    for forged in ("x", "bm90IGpzb24", "WzFd"):  # garbage, not JSON, a list of the wrong size
        with pytest.raises(CursorError):
            orders_page(journal, "AB1234", limit=2, before=forged)
