"""A future held into its expiry in a backtest settles as the exchange settles it (strategy_worker/backtest/expiry.py,
the one rule options settle by too): at the expiry day's close, at the final settlement price — the underlying's
close, not the future's own — journaled as the settlement fill and trade with its P&L, the strategy told (its book
goes flat by the broker's ``external`` fill, as live adopts it), and the contract no longer listed the next day: the
strategy's next order goes to the next month's future. Before, the future was never settled (the backtest ended
holding it) and the next day's order went to the expired contract at its last price."""

from __future__ import annotations

from datetime import date, datetime

import msgspec

from shared import ist
from shared.candles.instruments import InstrumentArchive
from shared.candles.store import Candles, CandleStore
from shared.charges import charges_paise
from shared.kite.models import Instrument
from shared.messages import BacktestSpec
from strategy_worker.backtest.job import backtest_for, candles_root, execute

INDEX = Instrument(instrument_token=256265, exchange_token=1001, tradingsymbol="NIFTY 50", name="NIFTY 50",
                   last_price=0, expiry=None, strike=0, tick_size=0, lot_size=0, instrument_type="EQ",
                   segment="INDICES", exchange="NSE")


def future(token: int, month: str, expiry: date) -> Instrument:
    return Instrument(instrument_token=token, exchange_token=token >> 8, tradingsymbol=f"NIFTY26{month}FUT",
                      name="NIFTY", last_price=0, expiry=expiry, strike=0, tick_size=0.05, lot_size=65,
                      instrument_type="FUT", segment="NFO-FUT", exchange="NFO")


MAR = future(13_238_786, "MAR", date(2026, 3, 31))  # NIFTY's monthly: the last Tuesday
APR = future(13_241_090, "APR", date(2026, 4, 28))
DAYS = [date(2026, 3, 27), date(2026, 3, 30), date(2026, 3, 31), date(2026, 4, 1)]  # Fri, Mon, Tue (expiry), Wed
PREMIUM = {MAR.instrument_token: 12.0, APR.instrument_token: 40.0}  # over the index, to the end
SPEC = BacktestSpec(strategy="ema_crossover", symbols=["NIFTY 50"], start=DAYS[0], end=DAYS[-1], interval="minute",
                    params={"fast": 5, "slow": 20, "intraday": False, "reverse": False, "lots": 1}, warmup_bars=0)


def index_closes() -> list[list[float]]:
    """Minute closes of each day: a dip for the EMAs to warm up under, a slow rise through the expiry (a golden
    cross early on day 1: long, held; no bar's range near the stop or target ATRs away), then on the day after the
    expiry a dip (a death cross: short) and a rise (a golden cross: the short exits)."""
    out, g = [], 0
    for d in DAYS[:3]:
        day = []
        for _ in range(375):
            day.append(23000 - 0.5 * g if g < 30 else 22985.5 + 0.05 * (g - 29))
            g += 1
        out.append(day)
    base = out[-1][-1]
    out.append([base - 0.3 * (h + 1) if h < 60 else base - 18 + 0.3 * (h - 59) for h in range(375)])
    return [[round(c * 20) / 20 for c in day] for day in out]


def seed(data_dir) -> list[list[float]]:
    closes = index_closes()
    rows: dict[int, list[tuple]] = {t: [] for t in (INDEX.instrument_token, MAR.instrument_token, APR.instrument_token)}
    prev = closes[0][0]
    for d, day in zip(DAYS, closes):
        t0 = int(datetime(d.year, d.month, d.day, 9, 15, tzinfo=ist.IST).timestamp())
        for k, c in enumerate(day):
            o = prev
            for token, rows_of in rows.items():
                if token == MAR.instrument_token and d > MAR.expiry:
                    continue  # an expired contract trades no more
                add = PREMIUM.get(token, 0.0)
                rows_of.append((t0 + 60 * k, o + add, max(o, c) + 15 + add, min(o, c) - 15 + add, c + add, 1000, 0))
            prev = c
    store = CandleStore(candles_root(data_dir))
    for token, r in rows.items():
        store.write(token, "minute", Candles.from_rows(r))
    InstrumentArchive(candles_root(data_dir)).save(DAYS[0], [INDEX, MAR, APR])
    return closes


def test_a_future_held_over_its_expiry_settles_at_the_index_close_and_the_strategy_rolls(tmp_path):
    closes = seed(tmp_path)
    out = execute(SPEC, tmp_path)
    fills, orders, trades, m = out["parts"]["fills"], out["parts"]["orders"], out["parts"]["trades"], out["metrics"]
    mar, apr = f"NFO:{MAR.tradingsymbol}", f"NFO:{APR.tradingsymbol}"

    (entry, settled) = [f for f in fills if f["symbol"] == mar]
    assert (entry["kind"], entry["side"], entry["quantity"], entry["time"][:10]) == ("entry", "BUY", 65, "2026-03-27")
    final = round(closes[2][-1] * 100)  # the index's close on the expiry day: the final settlement price
    assert final != round((closes[2][-1] + PREMIUM[MAR.instrument_token]) * 100)  # not the future's own close
    assert (settled["kind"], settled["side"], settled["quantity"], settled["price"], settled["charges"],
            settled["time"][:10]) == ("expiry", "SELL", 65, final, 0, "2026-03-31")
    (held,) = [t for t in trades if t["symbol"] == mar]
    assert (held["exit_kind"], held["exit_price"]) == ("expiry", final)
    assert held["pnl"] == (final - entry["price"]) * 65
    assert [o["status"] for o in orders if o["kind"] == "gtt" and o["symbol"] == mar] == ["EXPIRED"]

    # the day after: nothing on the expired contract; the death cross's short and its exit on April's future
    assert not [o for o in orders if o["symbol"] == mar and o["time"][:10] > "2026-03-31"]
    assert [(f["kind"], f["side"], f["time"][:10]) for f in fills if f["symbol"] == apr] == [
        ("entry", "SELL", "2026-04-01"), ("exit", "BUY", "2026-04-01")]
    assert not out["parts"]["refusals"]

    # flat, and the P&L recomputed from the fills: cash, and each fill's charges from Zerodha's table (a settlement
    # is no trade: none)
    assert sum((1 if f["side"] == "BUY" else -1) * f["quantity"] for f in fills) == 0
    charges = sum(0 if f["kind"] == "expiry" else charges_paise(
        "NFO", "FUT", "NRML", f["side"], f["quantity"], f["price"], on=date.fromisoformat(f["time"][:10]))
        for f in fills)
    cash = sum((-1 if f["side"] == "BUY" else 1) * f["quantity"] * f["price"] for f in fills)
    assert sum(f["charges"] for f in fills) == charges
    assert (m["gross_pnl"], m["net_pnl"]) == (cash, cash - charges)


def test_the_strategy_hears_its_future_settled_and_holds_nothing(tmp_path):
    seed(tmp_path)
    bt = backtest_for(msgspec.structs.replace(SPEC, end=MAR.expiry), tmp_path)  # the range ends with the expiry
    bt.run()
    strategy = bt.setup.runner.instances[INDEX.instrument_token]
    assert strategy.book.held(MAR.instrument_token) == 0 and not any(strategy.book.position.values())
    assert bt.desk.strategy_qty[(strategy.strategy_id, MAR.instrument_token)] == 0
    assert not bt.desk.open_tokens and not bt.desk.protections and not bt.desk.gtts.by_token


def test_a_future_backtested_without_its_index_still_settles_at_the_index_close(tmp_path):
    """The future itself as the symbol (no index in the spec): its index's candles are loaded with it (and fetched,
    ``data.ensure`` reads the same feed), so the settlement is the index's close, not the future's own last price."""
    closes = seed(tmp_path)
    spec = msgspec.structs.replace(SPEC, symbols=[f"NFO:{MAR.tradingsymbol}"], end=MAR.expiry)
    bt = backtest_for(spec, tmp_path)
    assert INDEX.instrument_token in bt.setup.feed_tokens
    out = execute(spec, tmp_path)
    (settled,) = [f for f in out["parts"]["fills"] if f["kind"] == "expiry"]
    assert settled["price"] == round(closes[2][-1] * 100)  # the index's; the future's own close was 12 above
