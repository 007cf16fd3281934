"""Per-strategy P&L from journal fills, checked against figures worked by hand and, for any sequence of
fills, against the journal summary's own FIFO round trips (an independent path through the journal)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.strategy_pnl import MANUAL, default_instrument_type, strategy_pnl
from shared.charges import Segment, exercise_stt, order_charges
from shared.trading.summary import journal_summary


def fill(order_id, strategy, side, qty, price, symbol="INFY", exchange="NSE", product="MIS", n=0):
    return {"order_id": order_id, "trade_id": f"{order_id}-{n}", "strategy_id": strategy, "exchange": exchange,
            "tradingsymbol": symbol, "transaction_type": side, "quantity": qty, "price": price, "product": product,
            "fill_timestamp": f"2026-03-02 10:00:{n:02d}", "instrument_token": 1, "user_id": "AB1234"}


def charge(side, qty, rupees, segment=Segment.EQUITY_INTRADAY, exchange="NSE"):
    return order_charges(exchange=exchange, segment=segment, side=side, quantity=qty, price=Decimal(rupees)).total_paise


def test_figures_worked_by_hand():
    fills = [
        fill("o1", "ema", "BUY", 10, 100_00, n=1),
        fill("o2", "ema", "SELL", 4, 110_00, n=2), fill("o2", "ema", "SELL", 6, 110_00, n=3),  # one order, 2 fills
        fill("o3", "rsi", "SELL", 5, 200_00, symbol="TCS", n=4),
        fill("o4", "", "BUY", 1, 150_00, symbol="SBIN", n=5),  # a manual / adopted fill
    ]
    rows = {r["strategy"]: r for r in strategy_pnl(fills, {("NSE", "TCS"): 190_00, ("NSE", "SBIN"): 149_00})}
    ema, rsi, manual, total = rows["ema"], rows["rsi"], rows[MANUAL], rows["total"]
    assert (ema["realised"], ema["unrealised"], ema["trades"], ema["wins"]) == (100_00, 0, 2, 2)  # 2 FIFO pieces
    assert ema["charges"] == charge("BUY", 10, "100") + charge("SELL", 10, "110")  # brokerage once per order
    assert ema["net"] == ema["realised"] - ema["charges"] and ema["positions"] == []
    assert (rsi["realised"], rsi["unrealised"]) == (0, 5 * 10_00)  # short 5 from 200 marked at 190
    assert rsi["positions"] == [{"exchange": "NSE", "tradingsymbol": "TCS", "quantity": -5, "average_price": 200_00,
                                 "last_price": 190_00, "unrealised": 50_00}]
    assert manual["unrealised"] == -1_00 and manual["fills"] == 1
    assert total["net"] == sum(r["net"] for r in (ema, rsi, manual))
    assert total["charges"] == ema["charges"] + rsi["charges"] + manual["charges"]


def test_a_position_carried_in_opens_the_day_at_the_previous_close():
    """Closed today, a carried position is realised from yesterday's close (Kite's day P&L), not read as a new
    open position from its closing fill (a straddle squared off after a day roll showed '+65 @ 375.90' open)."""
    carried = [{"strategy_id": "straddle", "exchange": "NFO", "tradingsymbol": "NIFTY26D0825750CE", "quantity": -65,
                "price": 170_00},
               {"strategy_id": "ema", "exchange": "NSE", "tradingsymbol": "INFY", "quantity": 10, "price": 100_00},
               {"strategy_id": "", "exchange": "NSE", "tradingsymbol": "TCS", "quantity": 2, "price": 3_000_00}]
    fills = [fill("o1", "straddle", "BUY", 65, 175_00, symbol="NIFTY26D0825750CE", exchange="NFO", product="NRML", n=1),
             fill("o2", "ema", "SELL", 4, 104_00, n=2)]
    rows = {r["strategy"]: r for r in strategy_pnl(fills, {("NSE", "INFY"): 101_00, ("NSE", "TCS"): 3_010_00},
                                                   carried=carried)}
    straddle, ema, manual = rows["straddle"], rows["ema"], rows[MANUAL]
    assert (straddle["realised"], straddle["unrealised"], straddle["positions"], straddle["trades"]) == (-65 * 5_00, 0, [], 1)
    assert straddle["fills"] == 1 and straddle["charges"] > 0  # the day's fill only: the carried lot is no fill
    assert (ema["realised"], ema["unrealised"]) == (4 * 4_00, 6 * 1_00)  # 6 still held from the close, marked at 101
    assert [(p["quantity"], p["average_price"]) for p in ema["positions"]] == [(6, 100_00)]
    assert (manual["unrealised"], manual["fills"], manual["charges"]) == (2 * 10_00, 0, 0)  # carried, not traded


def test_options_and_futures_are_charged_by_their_segment():
    opt = fill("o1", "ic", "SELL", 75, 120_00, symbol="NIFTY26MAR24000CE", exchange="NFO", product="NRML")
    fut = fill("o2", "ic", "BUY", 75, 24_000_00, symbol="NIFTY26MARFUT", exchange="NFO", product="NRML")
    assert default_instrument_type("NFO", "NIFTY26MAR24000CE") == "CE"
    rows = strategy_pnl([opt, fut], {})
    assert rows[0]["charges"] == (charge("SELL", 75, "120", Segment.OPTIONS, "NFO")
                                  + charge("BUY", 75, "24000", Segment.FUTURES, "NFO"))


def test_an_expiry_settlement_is_charged_only_the_exercise_stt():
    """The exchange's settlement of contracts held into expiry is no trade (the future's was once charged
    ₹907.09 as a sell order): a bought call exercised pays STT on its intrinsic value, a future or a worthless
    put nothing."""
    def settled(symbol, price, n):
        return {**fill(f"expiry:s:{symbol}", "s", "SELL", 65, price, symbol=symbol, exchange="NFO", product="NRML",
                       n=n), "trade_id": "X2026-12-29", "fill_timestamp": "2026-12-29 15:30:00"}

    fills = [fill("o1", "s", "BUY", 65, 26_019_50, symbol="NIFTY26DECFUT", exchange="NFO", product="NRML", n=1),
             fill("o2", "s", "BUY", 65, 208_85, symbol="NIFTY26DEC25800CE", exchange="NFO", product="NRML", n=2),
             fill("o3", "s", "BUY", 65, 10, symbol="NIFTY26DEC25700PE", exchange="NFO", product="NRML", n=3),
             settled("NIFTY26DECFUT", 26_000_00, 4), settled("NIFTY26DEC25800CE", 200_00, 5),
             settled("NIFTY26DEC25700PE", 0, 6)]
    [row, _] = strategy_pnl(fills, {})
    traded = (charge("BUY", 65, "26019.50", Segment.FUTURES, "NFO") + charge("BUY", 65, "208.85", Segment.OPTIONS, "NFO")
              + charge("BUY", 65, "0.10", Segment.OPTIONS, "NFO"))
    stt = exercise_stt(Decimal(65 * 200), on=date(2026, 12, 29)) * 100  # 0.15 % of the intrinsic value (paise)
    assert stt == 19_50 and row["charges"] == traded + stt
    assert row["realised"] == 65 * (26_000_00 - 26_019_50) + 65 * (200_00 - 208_85) + 65 * (0 - 10)


sides = st.sampled_from(["BUY", "SELL"])
fills_strategy = st.lists(st.tuples(st.sampled_from(["a", "b", ""]), st.sampled_from(["INFY", "TCS"]), sides,
                                    st.integers(1, 50), st.integers(1_00, 5_000_00)), max_size=40)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(fills_strategy)
def test_realised_and_trades_agree_with_the_journal_summary(raw):
    fills = [fill(f"o{i}", s, side, q, p, symbol=sym, n=i % 60) for i, (s, sym, side, q, p) in enumerate(raw)]
    rows = {r["strategy"]: r for r in strategy_pnl(fills, {})}
    summary = journal_summary(fills)
    for name, stats in summary.by_strategy.items():
        row = rows[name or MANUAL]
        assert (row["realised"], row["trades"], row["wins"]) == (stats.total_pnl, stats.total_trades, stats.wins)
    if fills:
        assert rows["total"]["realised"] == summary.total_pnl
        # open lots marked at their own last fill: realised + unrealised = Σ sells − Σ buys + open value
        net_cash = sum((f["quantity"] * f["price"]) * (1 if f["transaction_type"] == "SELL" else -1) for f in fills)
        last = {f["tradingsymbol"]: f["price"] for f in fills}
        held = {}
        for f in fills:
            key = (f["strategy_id"], f["tradingsymbol"])
            held[key] = held.get(key, 0) + f["quantity"] * (1 if f["transaction_type"] == "BUY" else -1)
        open_value = sum(q * last[sym] for (_, sym), q in held.items())
        assert rows["total"]["realised"] + rows["total"]["unrealised"] == net_cash + open_value


def test_delivery_shares_bought_and_sold_the_same_day_are_charged_as_intraday():
    """Zerodha charges a CNC buy and sell of the same shares on one day as intraday (brokerage 0.03 % or ₹20, STT
    0.025 % on the sell only, stamp 0.003 %, no DP charge), not at delivery rates. By hand, NSE, late 2026:
    BUY 10 @ ₹1,500 (₹15,000): brokerage 4.50 + exchange 0.4605 + SEBI 0.015 + stamp 0.45 + GST 18 % of 4.9755
    = ₹6.32109 → 632 paise; SELL 10 @ ₹1,510: 4.53 + STT 3.775 + 0.46357 + 0.0151 + GST 0.90156 = ₹9.68523 →
    969 paise. At delivery rates (what kta charged) the two came to 1,781 + 1,566 = 3,347 paise."""
    day = [fill("o1", "ema", "BUY", 10, 1500_00, product="CNC", n=1),
           fill("o2", "ema", "SELL", 10, 1510_00, product="CNC", n=2)]
    (ema, _) = strategy_pnl(day, {})
    assert ema["charges"] == 632 + 969

    # part of it: 4 of the 10 sold the same day (by another strategy: Kite nets the account) are intraday, the
    # other 6 bought stay delivery; a sell of shares carried in (no buy that day) is delivery
    day = [fill("o1", "ema", "BUY", 10, 1500_00, product="CNC", n=1),
           fill("o2", "rsi", "SELL", 4, 1510_00, product="CNC", n=2),
           fill("o3", "rsi", "SELL", 5, 3000_00, symbol="TCS", product="CNC", n=3)]
    rows = {r["strategy"]: r for r in strategy_pnl(day, {})}
    assert rows["ema"]["charges"] == (charge("BUY", 4, "1500") + charge("BUY", 6, "1500", Segment.EQUITY_DELIVERY))
    assert rows["rsi"]["charges"] == (charge("SELL", 4, "1510")
                                      + charge("SELL", 5, "3000", Segment.EQUITY_DELIVERY))
