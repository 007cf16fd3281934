"""The async KiteClient against a real kite_sim process over HTTP: every method, and broker errors as
typed exceptions. Rate limits and retries: test_client_retries.py; egress: test_client_egress.py."""

from __future__ import annotations

from datetime import datetime, timedelta

import httpx
import pytest

from shared.kite import errors, tls
from shared.kite import models as km
from shared.kite.client import HISTORICAL_MAX_DAYS, KiteClient
from shared.kite.ratelimit import for_api_key
from tests.helpers import eventually
from tests.kite.kit import INFY
from tests.simkit import login, request_token

pytestmark = pytest.mark.slow(seconds=20)



async def test_session_exchange_profile_and_invalidation(sim):
    expired: list[errors.TokenException] = []
    async with KiteClient(sim.api_key, root=sim.root, on_token_expired=expired.append,
                          rate_limiter=for_api_key(sim.api_key)) as kite:
        with pytest.raises(errors.TokenException) as bad:
            await kite.generate_session(request_token(sim), "not-the-secret")
        assert bad.value.status == 403 and bad.value.message

        session = await kite.generate_session(request_token(sim), sim.api_secret)
        assert isinstance(session, km.Session) and session.user_id == "DEMO01" and session.access_token
        assert kite.access_token == session.access_token and session.api_key == sim.api_key
        profile = await kite.profile()
        assert profile.user_id == "DEMO01" and "NSE" in profile.exchanges and profile.email == session.email

        assert await kite.invalidate_access_token() is True
        with pytest.raises(errors.TokenException) as dead:
            await kite.profile()
    assert dead.value.status == 403 and dead.value.message == "Incorrect `api_key` or `access_token`."
    assert expired == [dead.value]  # the expired-session hook fired, once, and nothing retried


async def test_margins_holdings_and_bad_segment(kite):
    both = await kite.margins()
    equity = await kite.margins("equity")
    assert isinstance(both, km.Margins) and both.equity.enabled and both.equity.available.cash > 0
    assert equity.available.cash == both.equity.available.cash
    with pytest.raises(errors.InputException) as e:
        await kite.margins("crypto")
    assert e.value.status == 400 and e.value.message == "Invalid segment."

    holdings = {h.tradingsymbol: h for h in await kite.holdings()}  # seeded: INFY 10 @ 1480, RELIANCE, ITC
    assert set(holdings) >= {"INFY", "RELIANCE", "ITC"} and holdings["INFY"].average_price == 1480.0
    assert holdings["INFY"].instrument_token == 408065 and holdings["INFY"].last_price > 0
    assert holdings["INFY"].isin and holdings["ITC"].quantity > 0


@pytest.fixture
async def kite2(sim):
    """The second demo user, whose book and positions no other test touches."""
    sim.reset_faults()
    async with KiteClient(sim.api_key, login(sim, "DEMO02", "demo2"), root=sim.root,
                          rate_limiter=for_api_key(sim.api_key)) as client:
        yield client


async def test_order_lifecycle_trades_positions_and_convert(kite2):
    kite = kite2
    ltp = (await kite.ltp(INFY))[INFY].last_price
    held = sum(p.quantity for p in (await kite.positions()).net if p.tradingsymbol == "INFY" and p.product == "MIS")
    resting = await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "LIMIT",
                                     price=round(ltp * 0.97, 1), tag="lc-rest")
    assert await kite.modify_order("regular", resting, price=round(ltp * 0.96, 1), quantity=2) == resting
    history = await kite.order_history(resting)
    assert [o.status for o in history][-1] == "OPEN" and history[-1].quantity == 2 and history[-1].modified
    assert await kite.cancel_order("regular", resting) == resting
    assert (await kite.order_history(resting))[-1].status == "CANCELLED"

    filled = await kite.place_order("regular", "NSE", "INFY", "BUY", 3, "MIS", "MARKET", market_protection=-1,
                                    tag="lc-fill")
    await eventually(lambda: _status(kite, filled, "COMPLETE"), what="the market order fills")
    book = {o.order_id: o for o in await kite.orders()}
    assert book[resting].status == "CANCELLED" and book[filled].tag == "lc-fill" and book[filled].filled_quantity == 3

    fills = await kite.order_trades(filled)
    assert sum(t.quantity for t in fills) == 3 and {t.order_id for t in fills} == {filled}
    assert {t.trade_id for t in fills} <= {t.trade_id for t in await kite.trades()}

    mis = [p for p in (await kite.positions()).net if p.tradingsymbol == "INFY" and p.product == "MIS"]
    assert mis and mis[0].quantity == held + 3
    assert await kite.convert_position("NSE", "INFY", "BUY", "day", mis[0].quantity, "MIS", "CNC") is True
    net = {(p.tradingsymbol, p.product): p.quantity for p in (await kite.positions()).net}
    assert ("INFY", "MIS") not in net and net[("INFY", "CNC")] == mis[0].quantity

    with pytest.raises(errors.InputException) as e:
        await kite.order_history("999999999999999")
    assert e.value.status == 400 and "order_id" in e.value.message


async def _status(kite, order_id, status):
    return (await kite.order_history(order_id))[-1].status == status


async def test_bad_orders_raise_input_exception_with_the_broker_message(kite):
    with pytest.raises(errors.InputException) as e:
        await kite.place_order("regular", "NSE", "INFY", "BUY", 0, "MIS", "LIMIT", price=100)
    assert e.value.status == 400 and e.value.message == "Invalid `quantity`."
    with pytest.raises(errors.InputException) as e:
        await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "MARKET")
    assert "market protection" in e.value.message
    with pytest.raises(errors.InputException) as e:
        await kite.place_order("regular", "NSE", "NOSUCHSCRIP", "BUY", 1, "MIS", "MARKET", market_protection=-1)
    assert e.value.message == "Invalid `tradingsymbol`."
    assert not [o for o in await kite.orders() if o.quantity == 0 or o.tradingsymbol == "NOSUCHSCRIP"]


async def test_margin_rejections_come_back_as_rejected_orders_with_the_reason(kite, sim):
    """Kite's RMS answers a margin shortfall after accepting the order (status REJECTED + message),
    not with a synchronous MarginException; the sim does the same. (The exception mapping of a
    MarginException body is tested against the official mock's error envelope.)"""
    reason = "RMS:Margin Exceeds, Required:12345.00, Available:10.00 for entity account-DEMO01"
    sim.faults(reject_next=1, reject_reason=reason)
    oid = await kite.place_order("regular", "NSE", "INFY", "BUY", 1, "MIS", "MARKET", market_protection=-1)
    last = (await kite.order_history(oid))[-1]
    assert last.status == "REJECTED" and last.status_message == reason

    huge = await kite.place_order("regular", "NSE", "INFY", "BUY", 90_000, "CNC", "MARKET", market_protection=-1)
    last = (await kite.order_history(huge))[-1]
    assert last.status == "REJECTED" and last.status_message.startswith("Insufficient funds. Required margin is")


async def test_quote_ohlc_ltp_and_instruments(kite):
    keys = [INFY, "NSE:RELIANCE", "NSE:NOPE"]
    quotes, ohlc, ltp = await kite.quote(*keys), await kite.ohlc(*keys), await kite.ltp(*keys)
    for got in (quotes, ohlc, ltp):
        assert set(got) == {INFY, "NSE:RELIANCE"}  # unknown keys are omitted, like Kite
    q = quotes[INFY]
    assert q.instrument_token == 408065 and q.last_price > 0 and q.volume >= 0 and q.ohlc.close > 0
    assert len(q.depth.buy) == 5 and q.depth.buy[0].price <= q.depth.sell[0].price
    assert q.lower_circuit_limit < q.last_price < q.upper_circuit_limit
    assert ohlc[INFY].ohlc.open > 0 and ltp["NSE:RELIANCE"].instrument_token == quotes["NSE:RELIANCE"].instrument_token

    nse = {i.tradingsymbol: i for i in await kite.instruments("NSE")}
    assert nse["INFY"].instrument_token == 408065 and nse["INFY"].exchange == "NSE" and nse["INFY"].expiry is None
    everything = await kite.instruments()
    options = [i for i in everything if i.instrument_type in ("CE", "PE")]
    assert options and all(i.expiry is not None and i.strike > 0 and i.lot_size > 1 for i in options)
    assert {i.exchange for i in everything} >= {"NSE", "NFO"}
    assert wire_ok(kite)


async def test_historical_data_is_chunked_into_the_interval_maximum(kite):
    to = datetime.now().replace(microsecond=0)
    since = to - timedelta(days=130)
    before = kite.wire.count("GET", "/instruments/historical")
    candles = await kite.historical_data(408065, since, to, "minute")
    requests = kite.wire.count("GET", "/instruments/historical") - before
    assert requests == -(-130 // HISTORICAL_MAX_DAYS["minute"]) == 3

    stamps = [c.date for c in candles]
    assert stamps == sorted(set(stamps)), "chunks overlap or are out of order"
    by_day: dict = {}
    for c in candles:
        by_day.setdefault(c.date.date(), []).append(c)
        assert c.low <= min(c.open, c.close) <= max(c.open, c.close) <= c.high
    for day, rows in by_day.items():
        gaps = {(b.date - a.date).total_seconds() for a, b in zip(rows, rows[1:])}
        assert gaps <= {60.0}, f"hole inside {day} (a chunk boundary dropped candles)"
    full_days = [rows for day, rows in by_day.items() if day not in (min(by_day), max(by_day))]  # ``since`` and
    # ``to`` carry the time of day the test runs at: their own days are partial (09:23 → 367 candles)
    assert len(full_days) > 80 and {len(r) for r in full_days} == {375}

    # the same candles as one request over a range the broker serves unchunked
    tail = await kite.historical_data(408065, to - timedelta(days=20), to, "minute")
    seen = [c for c in candles if c.date >= tail[0].date]
    assert tail[: len(seen)] == seen  # inside a session the sim's minutes go on: later candles may follow
    # bare dates cover whole days and chunk without overlap
    by_date = await kite.historical_data(408065, since.date(), to.date(), "minute")
    assert [c.date for c in by_date] == sorted({c.date for c in by_date})
    whole_days = {c.date: c for c in by_date}
    assert all(whole_days.get(c.date) == c for c in candles)  # the datetime range lies inside the dates'
    assert min(whole_days).date() == min(c.date for c in by_date).date() <= candles[0].date.date()
    with pytest.raises(errors.InputException):
        await kite.historical_data(408065, since, to, "7minute")


async def test_order_and_basket_margins(kite):
    order = {"exchange": "NSE", "tradingsymbol": "INFY", "transaction_type": "BUY", "variety": "regular",
             "product": "MIS", "order_type": "MARKET", "quantity": 10}
    [one] = await kite.order_margins([order])
    assert one.tradingsymbol == "INFY" and one.total > 0 and "gst" in one.charges

    nfo = [i for i in await kite.instruments("NFO") if i.name == "NIFTY" and i.instrument_type == "CE"]
    a, b = sorted(nfo, key=lambda i: (i.expiry, i.strike))[:2]
    legs = [{"exchange": "NFO", "tradingsymbol": i.tradingsymbol, "transaction_type": side, "variety": "regular",
             "product": "NRML", "order_type": "MARKET", "quantity": i.lot_size} for i, side in ((a, "BUY"), (b, "SELL"))]
    basket = await kite.basket_order_margins(legs)
    assert len(basket.orders) == 2 and basket.final.total <= basket.initial.total


def wire_ok(kite) -> bool:
    return kite.wire.count(status=429) == 0 and kite.wire.count(status=500) == 0


async def test_a_delivery_sell_without_edis_authorisation_is_428_until_the_user_authorises(sim):
    """An account without DDPI (the sim's per-account eDIS setting): a CNC sell of its holdings raises
    HoldingAuthorisationRequired with Kite's message; authorise_holdings starts the request whose page
    (on the login page's site) takes the TPIN; then the same sell goes through."""
    sim.admin("accounts", {"user_id": "DEMO01", "edis": True})
    try:
        async with KiteClient(sim.api_key, login(sim), root=sim.root, login_url=sim.login_url,
                              rate_limiter=for_api_key(sim.api_key)) as kite:
            def sell():
                return kite.place_order("regular", "NSE", "RELIANCE", "SELL", 1, "CNC", "MARKET", market_protection=2)
            with pytest.raises(errors.HoldingAuthorisationRequired) as refused:
                await sell()
            assert refused.value.status == 428 and isinstance(refused.value, errors.HoldingException)
            assert "needs authorisation at depository" in refused.value.message
            isin = next(h.isin for h in await kite.holdings() if h.tradingsymbol == "RELIANCE")
            limited = sim.admin("faults", {"rate_limit_next": 1})["counts"].get("rate_limited", 0)
            request_id = await kite.authorise_holdings([(isin, 1)])  # a 429 first: sent again, not given up
            assert sim.admin("faults", {})["counts"]["rate_limited"] == limited + 1
            url = kite.holdings_authorisation_url(request_id)
            assert url == f"{sim.root}/connect/portfolio/authorise/holdings/{sim.api_key}/{request_id}"
            async with httpx.AsyncClient(verify=tls.context()) as browser:  # the trader, on the depository's page
                assert 'id="tpin"' in (await browser.get(url)).text
                assert (await browser.post(url, data={"tpin": "123456"})).status_code == 200
            held = next(h for h in await kite.holdings() if h.tradingsymbol == "RELIANCE")
            assert held.authorised_quantity >= 1
            assert await sell()
        real = KiteClient("key", "token")
        assert real.holdings_authorisation_url("r1") == \
            "https://kite.zerodha.com/connect/portfolio/authorise/holdings/key/r1"
        await real.aclose()
    finally:
        sim.admin("accounts", {"user_id": "DEMO01", "edis": False})
