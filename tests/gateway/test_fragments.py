"""SSE fragments and display filters: the same partials as the page, escaped, one line, per user."""

from __future__ import annotations

import re
from decimal import Decimal

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway import fragments
from gateway.templating import group_indian, ist, price, price_paise, rupees
from shared import messages as m

USER = "AB1234"
EVIL = '<script>alert("x")</script>'


def tick(token: int = 256265, ltp: float = 24512.35, **kw) -> m.Tick:
    return m.Tick(instrument_token=token, mode="quote", tradable=False, last_price=ltp, exchange_timestamp=1700000000,
                  **kw)


def test_rupees_use_indian_grouping_and_exact_paise():
    assert rupees(12345678) == "₹1,23,456.78"
    assert rupees(-5) == "-\u2060₹0.05"  # a word joiner: the sign never wraps away from the amount
    assert price_paise(-5) == "-0.05"  # a hyphen before a digit does not break
    assert rupees(100_00_000_00) == "₹1,00,00,000.00"
    assert rupees(None) == "–"
    assert price(24512.35) == "24,512.35"


@given(st.integers(min_value=-10**15, max_value=10**15))
def test_rupees_round_trip_to_the_paisa(paise):
    text = rupees(paise)
    assert re.fullmatch(r"(-\u2060)?₹(\d{1,2},)?(\d\d,)*\d{1,3}\.\d\d", text), text
    assert Decimal(text.replace("\u2060", "").replace("₹", "").replace(",", "")) * 100 == paise


@given(st.integers(min_value=0, max_value=10**12))
def test_indian_groups_are_three_then_twos(n):
    groups = group_indian(str(n)).split(",")
    assert "".join(groups) == str(n)
    assert len(groups[-1]) <= 3 and all(len(g) == 2 for g in groups[1:-1])


def test_ist_reads_every_stamp_kta_carries():
    assert ist(1700000000) == ist(1700000000 * 10**9) == "03:43:20"
    assert ist("2026-11-24 09:15:00") == "09:15:00"
    assert ist(0) == "–"


def test_tick_rows_carry_ids_names_and_values_for_the_flash():
    html = fragments.renderer({256265: "NIFTY 50"}.get)("ticks", [tick(), tick(738561, 1500.0)], USER)
    assert "\n" not in html
    assert html.count("<tr ") == 2 and 'id="tick-256265"' in html and 'id="tick-738561"' in html
    assert ">NIFTY 50<" in html and ">738561<" in html  # unknown names fall back to the token
    assert 'data-k="ltp" data-v="24512.35">24,512.35<' in html


def test_tick_as_the_stream_coalesces_it():
    html = fragments.render("ticks", {"instrument_token": 5, "last_price": 10.5, "change": -1.25, "volume": 1234567,
                                      "oi": 0, "exchange_timestamp": 1700000000}, USER)
    assert "12,34,567" in html and 'class="num neg"' in html and "-1.25%" in html


def test_names_and_reasons_are_escaped():
    sig = m.Signal(id="s1", user_id=USER, strategy_id=EVIL, strategy="ema_crossover", exchange="NSE",
                   tradingsymbol=EVIL, instrument_token=1, transaction_type="BUY", quantity=1, reason=EVIL)
    html = fragments.render("signals", sig, USER)
    assert "<script>" not in html and html.count("&lt;script&gt;") == 3
    order = m.OrderEvent(user_id=USER, order_id="1", tag="t1", tradingsymbol=EVIL, status_message=EVIL)
    assert "<script>" not in fragments.render("orders", order, USER)
    ev = m.WorkerStatus(service="strategy", instance="i", state="degraded", detail=EVIL)
    assert "<script>" not in fragments.render("status", ev, USER)


def test_orders_positions_risk_and_status_fragments():
    order = m.OrderEvent(user_id=USER, order_id="9", tag="abc", status=m.OrderStatus.COMPLETE, tradingsymbol="INFY",
                         quantity=5, filled_quantity=5, average_price=150025, instrument_token=408065)
    html = fragments.render("orders", msgspec.to_builtins(order), USER)  # the stream's plain dict works too
    assert 'id="order-abc"' in html and 'data-kind="fill"' in html and "₹1,500.25" in html and "COMPLETE" in html

    snap = m.PositionSnapshot(user_id=USER, ts=1700000000 * 10**9, day_pnl=-487_50, realised=-500_00,
                              unrealised=12_50, positions=[m.Position(tradingsymbol="INFY", exchange="NSE",
                                                                      quantity=5, average_price=150025,
                                                                      last_price=151000, pnl=-487_50)])
    html = fragments.render("positions", snap, USER)
    assert 'data-day-pnl="-48750"' in html and "-\u2060₹487.50" in html and 'id="pos-NSE-INFY-MIS"' in html
    assert 'data-exchange-ts="0"' in html and "at 03:43:20</div>" in html  # not heard the exchange: kta's clock
    on_sim = msgspec.structs.replace(snap, exchange_ts=1764560700 * 10**9)  # the exchange's 09:15:00 IST
    html = fragments.render("positions", on_sim, USER)  # the P&L curve's point and the hint on the exchange's clock
    assert f'data-exchange-ts="{1764560700 * 10**9}"' in html and "at 09:15:00 (exchange)</div>" in html

    risk = m.RiskState(user_id=USER, ts=1, state=m.KillSwitchState.HALTED, day_pnl=-50_000_00, reason="daily loss",
                       loss=50_000_00)
    html = fragments.render("risk", risk, USER)
    assert 'id="kill-switch-state">Halted<' in html and "-\u2060₹50,000.00" in html and "100.0%" in html
    # "Loss used" is the switch's own loss: after a reset in loss, the loss since the reset, not the day's
    reset = msgspec.structs.replace(risk, state=m.KillSwitchState.ACTIVE, reason="", loss=12_500_00)
    assert '<div class="value">25.0%</div>' in fragments.render("risk", reset, USER)

    gap = m.BrokerEvent(user_id=USER, kind="reconnected", ts=1700000000 * 10**9, gap_end=3_200_000_000)
    assert "reconnected after a 3.2 s gap" in fragments.render("status", gap, USER)
    plain = {**msgspec.to_builtins(m.BrokerEvent(user_id=USER, kind="token_expired", ts=1)), "source": "broker"}
    assert "reconnect Kite" in fragments.render("status", plain, USER)


def test_another_users_message_and_unknown_events_are_refused():
    with pytest.raises(ValueError, match="not for"):
        fragments.render("risk", m.RiskState(user_id="ZZ9999", ts=1, state=m.KillSwitchState.ACTIVE), USER)
    with pytest.raises(ValueError, match="no fragment"):
        fragments.render("bars", tick(), USER)


def test_signal_and_order_times_are_the_exchange_clock():
    """Ticks show the exchange's time; a signal shows its triggering tick's, an order Kite's order
    time when known, so the three tables read one clock (kta's own only as the fallback)."""
    wall = 1_800_000_000 * 10**9  # kta's clock, far from the exchange's (a fast sim)
    sig = m.Signal(id="s2", user_id=USER, strategy_id="x", strategy="ema_crossover", exchange="NSE",
                   tradingsymbol="INFY", instrument_token=1, transaction_type="BUY", quantity=1,
                   tick_ts=1700000000, created_at=wall)
    assert f">{ist(1700000000)}<" in fragments.render("signals", sig, USER)
    assert f">{ist(wall)}<" in fragments.render("signals", msgspec.structs.replace(sig, tick_ts=0), USER)
    order = m.OrderEvent(user_id=USER, order_id="9", tag="t9", tradingsymbol="INFY", ts=wall,
                         order_timestamp="2023-11-15 03:43:20")
    assert ">03:43:20<" in fragments.render("orders", order, USER)
    assert f">{ist(wall)}<" in fragments.render("orders", msgspec.structs.replace(order, order_timestamp=""), USER)


def test_csv_cells_guard_formulas_but_leave_empty_cells_and_numbers_alone():
    from gateway.api.journal import csv_cell

    assert csv_cell("") == "" and csv_cell(0) == 0 and csv_cell(-12) == -12 and csv_cell("INFY") == "INFY"
    assert csv_cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and csv_cell("-1+2") == "'-1+2"
    assert csv_cell("@SUM") == "'@SUM" and csv_cell("\t=1") == "'\t=1"


def test_trading_state_in_a_traders_words():
    from gateway.templating import params_text, trading_state

    assert [trading_state(s) for s in ("ACTIVE", "REDUCING", "HALTED")] == ["Trading allowed", "Reducing only", "Halted"]
    assert trading_state({"state": "HALTED"}) == "Halted" and trading_state(None) == "Unknown"
    assert params_text({"fast": 3, "reverse": True, "name": '"x"'}) == 'fast=3, reverse=on, name="x"'


def test_an_alert_with_a_link_shows_it_as_a_link_and_only_http_links():
    """The depository's authorisation page (eDIS/TPIN) reaches the activity panel as a link the trader
    can open; a link that is not http(s) is never rendered."""
    base = dict(user_id="DEMO01", kind="authorisation", severity="critical", title="Authorise 2 INFY", ts=1)
    url = "https://kite.zerodha.com/connect/portfolio/authorise/holdings/key/r1?a=1&b=2"
    html = fragments.render("alerts", m.Alert(**base, link=url), "DEMO01")
    assert 'href="https://kite.zerodha.com/connect/portfolio/authorise/holdings/key/r1?a=1&amp;b=2"' in html
    assert 'rel="noopener noreferrer"' in html
    assert "href" not in fragments.render("alerts", m.Alert(**base, link="javascript:alert(1)"), "DEMO01")
    assert "href" not in fragments.render("alerts", m.Alert(**base), "DEMO01")


def test_the_positions_table_says_what_protects_each_position_and_flags_what_nothing_does():
    guard = m.Guard(kind="gtt", id="41", status="active", quantity=3, stop=135000, target=165000)
    snap = m.PositionSnapshot(user_id=USER, ts=1, positions=[
        m.Position(tradingsymbol="INFY", exchange="NSE", product="CNC", quantity=3),
        m.Position(tradingsymbol="TCS", exchange="NSE", product="MIS", quantity=-7),
        # a carried RELIANCE lot sold by its stop, then bought and sold again today: Kite's day row says -1
        m.Position(tradingsymbol="RELIANCE", exchange="NSE", product="CNC", quantity=-1)], protection=[
        m.ProtectionStatus(strategy_id="ema-1", exchange="NSE", tradingsymbol="INFY", product="CNC", quantity=3,
                           guards=[guard], covered=3, state="protected"),
        m.ProtectionStatus(strategy_id="rsi-1", exchange="NSE", tradingsymbol="TCS", product="MIS", quantity=-5,
                           guards=[m.Guard(kind="sl", id="2612", status="TRIGGER PENDING", quantity=5, stop=360000)],
                           covered=5, state="protected"),
        m.ProtectionStatus(strategy_id="ema-2", exchange="NSE", tradingsymbol="SBIN", product="CNC", quantity=2,
                           state="unprotected", note="no working stop at the broker")])
    html = fragments.render("positions", snap, USER)
    assert "GTT 41 · stop 1,350.00 / target 1,650.00 · ×3 · active" in html
    assert "SL 2612 · trigger 3,600.00 · ×5 · TRIGGER PENDING" in html
    # the broker holds 7 TCS short, kta's strategies 5: the other 2 have no stop; SBIN is carried (holdings)
    assert "2 not tracked by kta: no stop-loss" in html and 'id="pos-NSE-SBIN-CNC" class="carried unprotected"' in html
    assert "2 positions without working protection" in html
    assert 'id="pos-NSE-INFY-CNC" class=""' in html
    assert "RELIANCE: 1 of 1 not tracked" not in html and "1 not tracked by kta" not in html
