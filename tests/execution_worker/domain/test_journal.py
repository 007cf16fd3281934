from execution_worker.journal import Journal
from shared.messages import OrderEvent, OrderStatus

from .kit import USER, Clock, group, journal, leg, order_request, signal


def test_signal_recorded_once_and_decision_survives_reopen(tmp_path):
    j = journal(tmp_path)
    assert j.signal_decision("sig1") is None
    assert j.record_signal(signal("sig1"), "accepted") is True
    assert j.record_signal(signal("sig1"), "refused", "again", "ORDER_RATE") is False
    j.close()
    again = Journal(tmp_path / "journal.db")
    assert again.signal_decision("sig1") == "accepted"
    assert len(again.signals(USER)) == 1


def test_order_upsert_keeps_known_ids_and_open_orders_excludes_terminal(tmp_path):
    j = journal(tmp_path)
    req = order_request("ktaA")
    j.record_order(USER, tag="ktaA", signal_id="sig1", group_id="", kind="entry", request=req, state="SUBMITTING")
    j.record_order(USER, tag="ktaA", signal_id="sig1", group_id="", kind="entry", request=req, order_id="O1",
                   state="OPEN", status="OPEN")
    j.record_order(USER, tag="ktaA", signal_id="sig1", group_id="", kind="entry", request=req, state="OPEN")
    row = j.order_by_id("O1")
    assert row["tag"] == "ktaA" and row["order_id"] == "O1" and row["status"] == "OPEN"
    j.record_order(USER, tag="ktaB", signal_id="sig2", group_id="", kind="entry", request=order_request("ktaB"),
                   order_id="O2", state="COMPLETE", status="COMPLETE")
    assert [o["tag"] for o in j.open_orders(USER)] == ["ktaA"]
    assert len(j.orders(USER, "2026-11-24")) == 2 and j.orders(USER, "2026-11-23") == []


def test_events_dedup_and_update_the_order_row(tmp_path):
    j = journal(tmp_path)
    j.record_order(USER, tag="ktaA", signal_id="sig1", group_id="", kind="entry", request=order_request("ktaA"),
                   order_id="O1", state="OPEN")
    ev = OrderEvent(user_id=USER, order_id="O1", tag="ktaA", state="COMPLETE", status=OrderStatus.COMPLETE,
                    quantity=10, filled_quantity=10, average_price=150005, exchange_timestamp="2026-11-24 10:00:01")
    assert j.record_order_event(ev) is True
    assert j.record_order_event(ev) is False
    row = j.order_by_tag("ktaA")
    assert (row["state"], row["filled_quantity"], row["average_price"]) == ("COMPLETE", 10, 150005)
    assert j.open_orders(USER) == []
    assert len(j.order_events("O1")) == 1


def test_trades_idempotent_and_filed_under_their_ist_day(tmp_path):
    j = journal(tmp_path)
    kw = dict(order_id="O1", exchange="NSE", tradingsymbol="INFY", instrument_token=1, transaction_type="BUY",
              quantity=5, price=150000, fill_timestamp="2026-11-23 15:10:00")
    assert j.record_trade(USER, trade_id="T1", **kw) is True
    assert j.record_trade(USER, trade_id="T1", **kw) is False
    assert j.record_trade(USER, trade_id="T2", **kw) is True
    assert len(j.trades(USER, "2026-11-23")) == 2 and j.trades(USER, "2026-11-24") == []


def test_audit_links_signal_decision_orders_events_and_fills(tmp_path):
    clock = Clock()
    j = journal(tmp_path, clock)
    j.record_signal(signal("sig9"), "accepted")
    j.record_risk_event(USER, code="REDUCING_ONLY_EXITS", message="warn", signal_id="sig9")
    j.record_order(USER, tag="kta9", signal_id="sig9", group_id="", kind="entry", request=order_request("kta9"),
                   order_id="O9", state="OPEN")
    j.record_order_event(OrderEvent(user_id=USER, order_id="O9", tag="kta9", status=OrderStatus.COMPLETE,
                                    state="COMPLETE", filled_quantity=10))
    j.record_trade(USER, trade_id="T9", order_id="O9", exchange="NSE", tradingsymbol="INFY", instrument_token=1,
                   transaction_type="BUY", quantity=10, price=150000, fill_timestamp="2026-11-24 10:00:02")
    by_order, by_signal = j.audit("O9"), j.audit("sig9")
    assert by_order == by_signal
    assert by_order["signal"]["decision"] == "accepted"
    assert by_order["risk_events"][0]["code"] == "REDUCING_ONLY_EXITS"
    [order] = by_order["orders"]
    assert order["events"][0]["status"] == "COMPLETE" and order["trades"][0]["trade_id"] == "T9"
    assert j.audit("nothing") == {}


def test_group_states_are_checked(tmp_path):
    j = journal(tmp_path)
    j.record_group("g1", USER, strategy_id="s2", structure="iron_condor", state="placing")
    j.record_group("g1", USER, strategy_id="s2", structure="iron_condor", state="rolled_back", detail="leg 3 rejected")
    assert j.group("g1")["state"] == "rolled_back"
    try:
        j.record_group("g1", USER, strategy_id="s2", structure="iron_condor", state="done")
    except ValueError as e:
        assert "group state" in str(e)
    else:
        raise AssertionError("bad group state accepted")


def test_audit_of_a_group_lists_every_leg(tmp_path):
    j = journal(tmp_path)
    j.record_signal(group("iron_condor", [leg("PE1", "BUY", "PE", 24000_00)], id="g1"), "accepted")
    j.record_group("g1", USER, strategy_id="s2", structure="iron_condor", state="completed")
    for i in range(2):
        j.record_order(USER, tag=f"ktag{i}", signal_id="", group_id="g1", kind="entry",
                       request=order_request(f"ktag{i}", leg_index=i), order_id=f"L{i}", state="OPEN")
    for key in ("g1", "L1", "ktag0"):
        audit = j.audit(key)
        assert [o["order_id"] for o in audit["orders"]] == ["L0", "L1"]
        assert audit["group"]["state"] == "completed" and audit["signal"]["type"] == "signal_group"


def test_a_journal_from_an_older_kta_gains_the_new_columns_and_keeps_its_rows(tmp_path):
    import sqlite3

    from execution_worker.journal_schema import SCHEMA

    old_columns = [c for c in SCHEMA["orders"][0] if c not in ("order_timestamp", "exchange_timestamp")]
    with sqlite3.connect(tmp_path / "journal.db") as db:
        db.execute(f"CREATE TABLE orders ({', '.join(old_columns)}, PRIMARY KEY (tag))")
        db.execute("INSERT INTO orders (tag, user_id, order_id, state) VALUES ('ktaOld', ?, 'O9', 'OPEN')", [USER])
    j = Journal(tmp_path / "journal.db")
    j.update_order("ktaOld", order_timestamp="2026-11-24 10:15:00")
    row = j.order_by_tag("ktaOld")
    assert (row["order_id"], row["order_timestamp"], row["exchange_timestamp"]) == ("O9", "2026-11-24 10:15:00", "")
