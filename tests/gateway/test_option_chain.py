"""The option chain's clock: the exchange's time from the spot quote decides which expiry is nearest."""

from __future__ import annotations

from datetime import date, datetime

from gateway.option_chain import live_expiries, market_now, underlying_name
from shared.ist import IST

EXPIRIES = [date(2026, 1, 13), date(2026, 1, 6), date(2026, 1, 27)]


def at(stamp: str) -> float:
    return datetime.fromisoformat(stamp).replace(tzinfo=IST).timestamp()


def test_an_expiry_trades_until_its_close_then_the_next_one_is_nearest():
    assert live_expiries(EXPIRIES, at("2026-01-06 15:29:00"))[0] == date(2026, 1, 6)
    assert live_expiries(EXPIRIES, at("2026-01-06 15:31:00")) == [date(2026, 1, 13), date(2026, 1, 27)]
    assert live_expiries(EXPIRIES, at("2026-02-01 10:00:00")) == [date(2026, 1, 27)]  # all past: the last


def test_now_is_the_quote_timestamp_read_as_ist():
    assert market_now("2026-01-06 15:31:00") == at("2026-01-06 15:31:00")
    assert abs(market_now(None) - datetime.now().timestamp()) < 60
    assert abs(market_now("not a time") - datetime.now().timestamp()) < 60


def test_underlying_names():
    assert underlying_name("NSE:NIFTY 50") == underlying_name("nifty") == "NIFTY"
    assert underlying_name("NSE:INFY") == "INFY"
