"""The strategies panel says what each strategy trades: one added without symbols follows the live
symbols (it trades those of every Start), one added with symbols its own list."""

from __future__ import annotations

from gateway.page_context import skipped_note
from gateway.templating import environment


def rows(live: bool) -> str:
    strategies = [
        {"strategy_id": "ema-1", "strategy": "ema_crossover", "params": {}, "state": "active", "error": "", "signals": 3,
         "follows_live": True, "tokens": [408065, 256265],
         "symbols": [{"token": 408065, "symbol": "INFY"}, {"token": 256265, "symbol": "NIFTY 50"}]},
        {"strategy_id": "rsi-1", "strategy": "rsi", "params": {}, "state": "active", "error": "", "signals": 0,
         "follows_live": False, "tokens": [1, 2, 3, 4],
         "symbols": [{"token": t, "symbol": s} for t, s in enumerate(("TCS", "ITC", "SBIN", "HDFCBANK"), 1)]},
    ]
    return environment().get_template("partials/strategy_list.html").render(
        strategies=strategies, strategies_error="", live=live)


def test_a_following_strategy_shows_live_symbols_and_an_own_list_its_symbols():
    html = rows(live=True)
    following = html.split('id="strategy-ema-1"')[1].split("</tr>")[0]
    assert "live symbols (2)" in following and "INFY, NIFTY 50" in following  # the count, the names in its title
    own = html.split('id="strategy-rsi-1"')[1].split("</tr>")[0]
    assert "TCS, ITC, SBIN +1" in own and "live symbols" not in own
    stopped = rows(live=False).split('id="strategy-ema-1"')[1].split("</tr>")[0]
    assert "live symbols" in stopped and "(2)" not in stopped  # stopped: it will trade the next Start's


def test_symbols_a_strategy_skips_are_named_with_why():
    strategies = [{"strategy_id": "ic-1", "strategy": "iron_condor", "params": {}, "state": "active", "error": "",
                   "signals": 0, "follows_live": True, "tokens": [256265],
                   "symbols": [{"token": 256265, "symbol": "NIFTY 50"}],
                   "skipped": [{"token": 408065, "symbol": "INFY", "reason": "no option chain"},
                               {"token": 738561, "symbol": "RELIANCE", "reason": "no option chain"}]}]
    html = environment().get_template("partials/strategy_list.html").render(
        strategies=strategies, strategies_error="", live=True)
    row = html.split('id="strategy-ic-1"')[1].split("</tr>")[0]
    assert "live symbols (1)" in row and 'class="skipped">not INFY, RELIANCE: no option chain</small>' in row
    assert skipped_note([{"strategy_id": "ic-1", "symbol": "INFY", "reason": "no option chain"},
                         {"strategy_id": "ic-1", "symbol": "RELIANCE", "reason": "no option chain"},
                         {"strategy_id": "sg-2", "symbol": "INFY", "reason": "no option chain"}]) == (
        "ic-1 skips INFY, RELIANCE (no option chain); sg-2 skips INFY (no option chain)")
