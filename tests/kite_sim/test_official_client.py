"""A full trading day with the official ``kiteconnect`` client, unchanged, against a real kite_sim process
over real sockets: the login flow with the real checksum, profile, margins, instruments, quotes,
historical data, every order type through place / modify / cancel, the order and trade books,
positions, holdings, conversions, margin calculators, the ticker in all three modes with an order
update, and logout."""

from __future__ import annotations

import csv
import io
import threading
from datetime import datetime, timedelta

import pytest
from kiteconnect import KiteConnect, KiteTicker
from kiteconnect.exceptions import InputException, TokenException

from shared.market_calendar import CALENDAR
from tests.helpers import eventually_blocking
from tests.kite_sim.kit import client, module_sim, paced, sim_log
from tests.simkit import request_token

pytestmark = pytest.mark.timeout(120)


sim_dir, sim = module_sim("official", seed=11)


def tick_round(x: float, tick: float = 0.05) -> float:
    return round(round(x / tick) * tick, 2)


def ltp(kite: KiteConnect, key: str) -> float:
    return paced(lambda: kite.ltp([key]))[key]["last_price"]


def test_login_flow_uses_the_real_checksum(sim):
    kite = KiteConnect(sim.api_key, root=sim.root)
    with pytest.raises(TokenException, match="checksum"):
        kite.generate_session(request_token(sim), api_secret="not-the-secret")
    rt = request_token(sim)
    session = kite.generate_session(rt, api_secret=sim.api_secret)
    assert session["user_id"] == "DEMO01" and session["access_token"] and session["api_key"] == sim.api_key
    assert isinstance(session["login_time"], datetime)  # the client parsed Kite's timestamp format
    with pytest.raises(TokenException):  # request tokens are single use
        KiteConnect(sim.api_key, root=sim.root).generate_session(rt, api_secret=sim.api_secret)
    with pytest.raises(TokenException):
        KiteConnect(sim.api_key, root=sim.root, access_token="nope").profile()


def test_profile_and_margins(kite):
    p = paced(kite.profile)
    assert (p["user_id"], p["email"], p["broker"]) == ("DEMO01", "demo@kta.local", "ZERODHA")
    m = paced(kite.margins)
    assert set(m) == {"equity", "commodity"}
    assert m["equity"]["available"]["opening_balance"] == 1_000_000.0
    eq = paced(lambda: kite.margins("equity"))
    assert eq["available"]["cash"] == m["equity"]["available"]["cash"]
    assert paced(lambda: kite.margins("commodity"))["enabled"] is False
    with pytest.raises(InputException):
        paced(lambda: kite.margins("crypto"))


def test_instruments_parse_as_kite_csv(kite):
    everything = paced(kite.instruments)
    nfo = paced(lambda: kite.instruments("NFO"))
    nse = paced(lambda: kite.instruments("NSE"))
    assert {i["exchange"] for i in nfo} == {"NFO"} and {i["exchange"] for i in nse} == {"NSE"}
    assert len(everything) == len({i["instrument_token"] for i in everything}) > len(nfo) + len(nse)
    infy = next(i for i in nse if i["tradingsymbol"] == "INFY")
    assert (infy["instrument_token"], infy["instrument_type"], infy["lot_size"]) == (408065, "EQ", 1)
    opt = next(i for i in nfo if i["instrument_type"] == "CE" and i["name"] == "NIFTY")
    assert opt["lot_size"] == 65 and opt["strike"] > 0 and opt["expiry"] is not None  # parsed into a date
    assert any(i["instrument_type"] == "FUT" for i in nfo)
    indices = [i for i in nse if i["segment"] == "INDICES"]
    assert {"NIFTY 50", "NIFTY BANK"} <= {i["tradingsymbol"] for i in indices}
    raw = paced(lambda: kite._get("market.instruments", url_args={"exchange": "NSE"}))  # the CSV itself
    assert next(csv.reader(io.StringIO(raw.decode()))) == [
        "instrument_token", "exchange_token", "tradingsymbol", "name", "last_price", "expiry", "strike",
        "tick_size", "lot_size", "instrument_type", "segment", "exchange"]


def test_quote_ohlc_ltp(kite):
    q = paced(lambda: kite.quote(["NSE:INFY", "NSE:NIFTY 50", "NSE:NOSUCH"]))
    assert set(q) == {"NSE:INFY", "NSE:NIFTY 50"}  # unknown instruments are left out, like Kite
    infy = q["NSE:INFY"]
    assert isinstance(infy["timestamp"], datetime) and infy["instrument_token"] == 408065
    assert len(infy["depth"]["buy"]) == len(infy["depth"]["sell"]) == 5
    assert infy["depth"]["buy"][0]["price"] < infy["depth"]["sell"][0]["price"]
    assert infy["lower_circuit_limit"] < infy["last_price"] < infy["upper_circuit_limit"]
    o = paced(lambda: kite.ohlc(["NSE:INFY", "NSE:NIFTY 50"]))
    assert o["NSE:INFY"]["ohlc"]["low"] <= o["NSE:INFY"]["ohlc"]["high"]
    lt = paced(lambda: kite.ltp(["NSE:INFY", "256265"]))
    assert lt["256265"]["instrument_token"] == 256265 and lt["NSE:INFY"]["last_price"] > 0


def test_historical_data(kite):
    now = datetime.now()
    minute = paced(lambda: kite.historical_data(408065, now - timedelta(days=4), now, "minute"))
    assert minute and all(c["low"] <= min(c["open"], c["close"]) <= max(c["open"], c["close"]) <= c["high"]
                          for c in minute)
    assert all((b["date"] - a["date"]).total_seconds() >= 60 for a, b in zip(minute, minute[1:]))
    five = paced(lambda: kite.historical_data(408065, now - timedelta(days=4), now, "5minute"))
    assert 0 < len(five) <= len(minute) // 4
    fut = next(i for i in paced(lambda: kite.instruments("NFO")) if i["instrument_type"] == "FUT")
    days = paced(lambda: kite.historical_data(fut["instrument_token"], now - timedelta(days=20), now, "day",
                                              continuous=True, oi=True))
    assert len(days) >= 10 and all(c["oi"] > 0 for c in days)
    assert "oi" not in paced(lambda: kite.historical_data(408065, now - timedelta(days=5), now, "day"))[0]
    holiday = max(d for d in CALENDAR.holidays if d < now.date())  # the exchange calendar's, by default
    around = paced(lambda: kite.historical_data(408065, holiday - timedelta(days=6), holiday + timedelta(days=1), "day"))
    assert around and holiday not in {c["date"].date() for c in around}
    with pytest.raises(InputException, match="60 days"):
        paced(lambda: kite.historical_data(408065, now - timedelta(days=61), now, "minute"))
    with pytest.raises(InputException, match="2000 days"):
        paced(lambda: kite.historical_data(408065, now - timedelta(days=2001), now, "day"))
    with pytest.raises(InputException, match="continuous"):
        paced(lambda: kite.historical_data(408065, now - timedelta(days=5), now, "day", continuous=True))
    with pytest.raises(InputException, match="interval"):
        paced(lambda: kite.historical_data(408065, now - timedelta(days=5), now, "7minute"))


def test_volume_comes_in_bursts_with_the_moves(kite):
    """A volume filter must be able to pass on the paper broker: with Poisson volume no minute ever traded 1.5x
    its 20-minute average, and VWAP breakout (default volume_factor 1.5) took no trade in a month of two symbols."""
    now = datetime.now()
    minute = paced(lambda: kite.historical_data(408065, now - timedelta(days=4), now, "minute"))
    surge, calm = [], []
    for i in range(20, len(minute)):
        if minute[i]["date"].date() != minute[i - 20]["date"].date():
            continue  # the 20 minutes before a bar, within its day
        move = abs(minute[i]["close"] - minute[i]["open"])
        average = sum(c["volume"] for c in minute[i - 20:i]) / 20
        (surge if minute[i]["volume"] >= 1.5 * average else calm).append(move)
    assert len(surge) >= 0.05 * (len(surge) + len(calm)), (len(surge), len(calm))
    assert sum(surge) / len(surge) > sum(calm) / len(calm)  # the busy minutes are where the price moved


def test_every_order_type_place_modify_cancel(kite):
    px = ltp(kite, "NSE:INFY")
    mkt = paced(lambda: kite.place_order("regular", "NSE", "INFY", "BUY", 2, "MIS", "MARKET", market_protection=2,
                                         tag="full-day"))
    history = paced(lambda: kite.order_history(mkt))
    statuses = [h["status"] for h in history]
    assert statuses[:3] == ["PUT ORDER REQ RECEIVED", "VALIDATION PENDING", "OPEN PENDING"]
    assert statuses[-1] == "COMPLETE" and history[-1]["filled_quantity"] == 2
    assert history[-1]["order_type"] == "LIMIT" and history[-1]["price"] > px  # protection turned it into a LIMIT
    fills = paced(lambda: kite.order_trades(mkt))
    assert sum(t["quantity"] for t in fills) == 2
    assert all(t["average_price"] <= history[-1]["price"] for t in fills)

    sell = paced(lambda: kite.place_order("regular", "NSE", "INFY", "SELL", 1, "MIS", "MARKET", market_protection=-1))
    assert paced(lambda: kite.order_history(sell))[-1]["status"] == "COMPLETE"

    limit = paced(lambda: kite.place_order("regular", "NSE", "INFY", "BUY", 1, "CNC", "LIMIT",
                                           price=tick_round(px * 0.9)))
    assert paced(lambda: kite.order_history(limit))[-1]["status"] == "OPEN"
    paced(lambda: kite.modify_order("regular", limit, price=tick_round(px * 0.91), quantity=3))
    modified = paced(lambda: kite.order_history(limit))[-1]
    assert (modified["status"], modified["quantity"], modified["price"]) == ("OPEN", 3, tick_round(px * 0.91))
    assert "MODIFIED" in [h["status"] for h in paced(lambda: kite.order_history(limit))]

    sl = paced(lambda: kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "SL", price=tick_round(px * 1.08),
                                        trigger_price=tick_round(px * 1.07)))
    assert paced(lambda: kite.order_history(sl))[-1]["status"] == "TRIGGER PENDING"
    paced(lambda: kite.modify_order("regular", sl, trigger_price=tick_round(px * 1.06)))
    assert paced(lambda: kite.order_history(sl))[-1]["status"] == "TRIGGER PENDING"
    slm = paced(lambda: kite.place_order("regular", "NSE", "INFY", "SELL", 1, "MIS", "SL-M",
                                         trigger_price=tick_round(px * 0.93)))
    assert paced(lambda: kite.order_history(slm))[-1]["status"] == "TRIGGER PENDING"
    amo = paced(lambda: kite.place_order("amo", "NSE", "INFY", "BUY", 1, "CNC", "LIMIT", price=tick_round(px * 0.9)))
    assert paced(lambda: kite.order_history(amo))[-1]["variety"] == "amo"

    for variety, oid in (("regular", limit), ("regular", sl), ("regular", slm), ("amo", amo)):
        paced(lambda v=variety, o=oid: kite.cancel_order(v, o))
        last = paced(lambda o=oid: kite.order_history(o))[-1]
        assert last["status"] == "CANCELLED" and last["pending_quantity"] == 0
    with pytest.raises(InputException, match="cancelled"):
        paced(lambda: kite.cancel_order("regular", limit))

    for variety in ("co", "bo", "iceberg", "auction"):
        with pytest.raises(InputException, match="variety"):
            paced(lambda v=variety: kite.place_order(v, "NSE", "INFY", "BUY", 1, "MIS", "LIMIT", price=px))
    with pytest.raises(InputException, match="market protection"):
        paced(lambda: kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "MARKET"))
    with pytest.raises(InputException, match="lot size"):
        nifty = next(i for i in paced(lambda: kite.instruments("NFO")) if i["instrument_type"] == "FUT")
        paced(lambda: kite.place_order("regular", "NFO", nifty["tradingsymbol"], "BUY", 1, "NRML", "MARKET",
                                       market_protection=2))

    book = paced(kite.orders)
    assert {mkt, sell, limit, sl, slm, amo} <= {o["order_id"] for o in book}
    assert {o["status"] for o in book if o["order_id"] in (limit, sl, slm, amo)} == {"CANCELLED"}
    trades = paced(kite.trades)
    assert {t["order_id"] for t in trades} >= {mkt, sell}


def test_positions_holdings_and_conversion(kite):
    pos = paced(kite.positions)
    row = next(p for p in pos["net"] if p["tradingsymbol"] == "INFY" and p["product"] == "MIS")
    assert (row["quantity"], row["buy_quantity"], row["sell_quantity"]) == (1, 2, 1)
    assert row["realised"] + row["unrealised"] == pytest.approx(row["pnl"], abs=0.011)
    assert any(p["tradingsymbol"] == "INFY" for p in pos["day"])
    holdings = {h["tradingsymbol"]: h for h in paced(kite.holdings)}
    assert holdings["INFY"]["quantity"] == 10 and holdings["ITC"]["quantity"] == 100
    assert paced(lambda: kite.convert_position("NSE", "INFY", "BUY", "day", 1, "MIS", "CNC")) is True
    pos = paced(kite.positions)
    assert any(p["tradingsymbol"] == "INFY" and p["product"] == "CNC" and p["quantity"] == 1 for p in pos["net"])
    assert not any(p["tradingsymbol"] == "INFY" and p["product"] == "MIS" for p in pos["net"])
    with pytest.raises(InputException):
        paced(lambda: kite.convert_position("NSE", "TCS", "BUY", "day", 1, "MIS", "CNC"))


def test_margin_calculators(kite):
    order = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "variety": "regular",
             "product": "CNC", "order_type": "LIMIT", "quantity": 2, "price": 1500}
    one = paced(lambda: kite.order_margins([order]))
    assert one[0]["tradingsymbol"] == "INFY" and one[0]["total"] == 3000.0
    # a bear call spread: the short call's wing caps its loss, so together they need far less than the short alone
    spot = paced(lambda: kite.ltp(["NSE:NIFTY 50"]))["NSE:NIFTY 50"]["last_price"]
    calls = [i for i in paced(lambda: kite.instruments("NFO")) if i["name"] == "NIFTY" and i["instrument_type"] == "CE"]
    chain = sorted((i for i in calls if i["expiry"] == max(c["expiry"] for c in calls)), key=lambda i: i["strike"])
    atm = min(chain, key=lambda i: abs(i["strike"] - spot))
    wing = chain[chain.index(atm) + 4]
    leg = {"exchange": "NFO", "variety": "regular", "product": "NRML", "order_type": "MARKET", "quantity": atm["lot_size"]}
    short = {**leg, "tradingsymbol": atm["tradingsymbol"], "transaction_type": "SELL"}
    spread = [{**leg, "tradingsymbol": wing["tradingsymbol"], "transaction_type": "BUY"}, short]
    basket = paced(lambda: kite.basket_order_margins(spread))
    alone = paced(lambda: kite.basket_order_margins([short]))
    assert len(basket["orders"]) == 2 and basket["final"]["total"] < basket["initial"]["total"]
    assert basket["final"]["total"] < alone["final"]["total"] == pytest.approx(alone["initial"]["total"], abs=0.01)
    # two equity orders are no hedge of each other: together they need what each does
    both = paced(lambda: kite.basket_order_margins([order, {**order, "transaction_type": "SELL", "product": "MIS"}]))
    assert both["final"]["total"] == pytest.approx(both["initial"]["total"])


def test_ticker_all_modes_and_order_update(sim, kite):
    """KiteTicker runs on Twisted's reactor, which can run only once per process: every ticker check is here."""
    from twisted.internet import reactor

    infy, reliance, nifty = 408065, 738561, 256265
    want = {infy: "full", reliance: "quote", nifty: "ltp"}
    seen: dict[int, dict] = {}
    got_all_modes, connected, order_seen = threading.Event(), threading.Event(), threading.Event()
    updates: list[dict] = []
    kws = KiteTicker(sim.api_key, kite.access_token, root=sim.ws_root, reconnect=False)

    def on_connect(ws, response):
        ws.subscribe(list(want))
        ws.set_mode(ws.MODE_FULL, [infy])
        ws.set_mode(ws.MODE_QUOTE, [reliance])
        ws.set_mode(ws.MODE_LTP, [nifty])
        connected.set()

    def on_ticks(ws, ticks):
        for t in ticks:
            if want.get(t["instrument_token"]) == t["mode"]:
                seen[t["instrument_token"]] = t
        if len(seen) == len(want):
            got_all_modes.set()

    def on_order_update(ws, data):
        updates.append(data)
        order_seen.set()

    kws.on_connect, kws.on_ticks, kws.on_order_update = on_connect, on_ticks, on_order_update
    kws.connect(threaded=True)
    try:
        assert connected.wait(20), "ticker never connected"
        assert got_all_modes.wait(20), f"ticks in every mode never arrived: {seen}"
        full, quote, ltp_tick = seen[infy], seen[reliance], seen[nifty]
        assert len(full["depth"]["buy"]) == 5 and full["depth"]["sell"][0]["price"] > full["depth"]["buy"][0]["price"]
        assert isinstance(full["exchange_timestamp"], datetime) and full["last_price"] > 0
        assert quote["volume_traded"] >= 0 and "depth" not in quote and quote["ohlc"]["high"] >= quote["ohlc"]["low"]
        assert set(ltp_tick) >= {"instrument_token", "last_price", "mode"} and ltp_tick["tradable"] is False
        oid = paced(lambda: kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT",
                                             price=tick_round(full["last_price"] * 0.9)))
        eventually_blocking(lambda: any(u["order_id"] == oid and u["status"] == "OPEN" for u in updates), 20,
                            "order update")
        update = next(u for u in updates if u["order_id"] == oid)
        assert update["tradingsymbol"] == "INFY" and update["transaction_type"] == "BUY"
        paced(lambda: kite.cancel_order("regular", oid))
        eventually_blocking(lambda: any(u["order_id"] == oid and u["status"] == "CANCELLED" for u in updates), 20,
                            "cancel")
    finally:
        reactor.callFromThread(kws.close)
        reactor.callFromThread(reactor.stop)
        if kws.websocket_thread is not None:
            kws.websocket_thread.join(10)


def test_logout_invalidates_the_token(sim, sim_dir):
    kite = client(sim)
    assert paced(kite.profile)["user_id"] == "DEMO01"
    assert kite.invalidate_access_token() is True
    with pytest.raises(TokenException):
        kite.profile()
    log = sim_log(sim_dir)
    assert "session opened for DEMO01" in log and "session closed" in log
    assert kite.access_token not in log  # secrets never reach the log
