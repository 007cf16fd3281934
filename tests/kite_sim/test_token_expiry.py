"""Access tokens die at 06:00 IST by the wall clock, as Kite's do; ``--token-expiry-hour`` moves that hour (the
test suite sets one 12 hours away: at 00:28 UTC the real cutoff 403'd eight tests' clients mid-test)."""

import argparse
from datetime import datetime

from kite_sim.accounts import checksum, default_accounts
from kite_sim.options import add_options, options_from
from shared.ist import IST

NOW = datetime(2026, 12, 2, 5, 58, tzinfo=IST).timestamp()  # two minutes before Kite's cutoff


def session_dies_at(argv: list[str]) -> datetime:
    p = argparse.ArgumentParser()
    add_options(p)
    accounts = default_accounts("http://127.0.0.1/cb", options_from(p.parse_args(argv)).token_expiry_hour)
    accounts._clock = lambda: NOW
    request_token = accounts.login("kta-demo", "DEMO01", "demo")
    _, info = accounts.exchange("kta-demo", request_token, checksum("kta-demo", request_token, "kta-demo-secret"))
    return datetime.fromtimestamp(info.expires_at, IST)


def test_a_token_dies_at_six_ist_unless_the_sim_is_told_another_hour():
    assert session_dies_at([]) == datetime(2026, 12, 2, 6, 0, tzinfo=IST)
    assert session_dies_at(["--token-expiry-hour", "18"]) == datetime(2026, 12, 2, 18, 0, tzinfo=IST)
    assert session_dies_at(["--token-expiry-hour", "3"]) == datetime(2026, 12, 3, 3, 0, tzinfo=IST)
