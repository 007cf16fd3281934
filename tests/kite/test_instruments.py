"""The one InstrumentCache: stale from 08:35 IST each day until reloaded, looked up by token and by
``EXCHANGE:TRADINGSYMBOL``, one download however many callers wait, yesterday's list kept when today's
cannot be had, and (against kite_sim) the next trading day's contracts after the refresh time."""

from __future__ import annotations

import asyncio
from datetime import date, datetime

import pytest

from shared.ist import IST
from shared.kite.clients import KiteClients
from shared.kite.instruments import POLL, RETRY_AFTER, InstrumentCache
from shared.kite.models import Instrument
from shared.broker_sessions import put_session, vault_for
from tests.helpers import eventually, stack_settings
from tests.simkit import PINNED, login, start_sim


def at(text: str) -> float:
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=IST).timestamp()


def inst(token: int, symbol: str, exchange: str = "NFO", expiry: date | None = None) -> Instrument:
    return Instrument(instrument_token=token, exchange_token=token >> 8, tradingsymbol=symbol, name=symbol[:5],
                      last_price=0, expiry=expiry, strike=0, tick_size=0.05, lot_size=65, instrument_type="CE",
                      segment=exchange, exchange=exchange)


class Clock:
    def __init__(self, text: str) -> None:
        self.now = at(text)

    def __call__(self) -> float:
        return self.now


async def test_stale_from_the_refresh_time_until_reloaded_and_tokens_follow_the_new_day():
    clock = Clock("2026-12-01 09:00")
    cache = InstrumentCache(clock)
    assert cache.stale() and len(cache) == 0
    day1 = [inst(12345, "NIFTY26D0125000CE", expiry=date(2026, 12, 1)), inst(408065, "INFY", "NSE")]
    days = [day1, [inst(12345, "NIFTY26D0825000CE", expiry=date(2026, 12, 8)), inst(408065, "INFY", "NSE")]]
    fetched: list[int] = []

    async def fetch() -> list[Instrument]:
        fetched.append(1)
        return days[len(fetched) - 1]

    await asyncio.gather(*(cache.ensure(fetch) for _ in range(5)))
    assert len(fetched) == 1  # one download however many callers waited for it
    assert cache["NFO:NIFTY26D0125000CE"].instrument_token == 12345 and cache.token(12345).expiry == date(2026, 12, 1)

    clock.now = at("2026-12-02 08:34")  # the next morning, before Kite's new dump
    assert not cache.stale() and await cache.ensure(fetch) is day1
    clock.now = at("2026-12-02 08:35")
    assert cache.stale()
    await cache.ensure(fetch)
    assert len(fetched) == 2
    assert cache.token(12345).tradingsymbol == "NIFTY26D0825000CE"  # the token Kite reused: today's contract
    assert "NFO:NIFTY26D0125000CE" not in cache and cache.get("NSE:INFY").instrument_token == 408065
    assert cache.find("nse:infy") is cache["NSE:INFY"] and cache.find("408065") is cache["NSE:INFY"]


async def test_a_failed_refresh_keeps_yesterdays_list_and_tries_again_later():
    clock = Clock("2026-12-01 09:00")
    cache = InstrumentCache(clock)
    first = [inst(1, "A26DECFUT")]
    await cache.ensure(lambda: _value(first))

    async def down() -> list[Instrument]:
        raise ConnectionError("broker down")

    clock.now = at("2026-12-02 09:00")
    assert await cache.ensure(down) is first  # kept, and the failure logged
    clock.now += RETRY_AFTER / 2
    second = [inst(2, "B26DECFUT")]
    assert await cache.ensure(lambda: _value(second)) is first  # not hammered: retried after RETRY_AFTER
    clock.now += RETRY_AFTER
    assert await cache.ensure(lambda: _value(second)) is second

    empty = InstrumentCache(clock)
    with pytest.raises(ConnectionError):  # nothing to fall back on: the caller hears why
        await empty.ensure(down)


async def _value(rows):
    return rows


async def test_the_daily_refresh_reloads_at_0835_ist_and_tells_its_listeners():
    clock = Clock("2026-12-01 15:00")
    cache = InstrumentCache(clock)
    seen: list[int] = []
    cache.on_load.append(lambda c: seen.append(c.token(7).instrument_token))
    await cache.ensure(lambda: _value([inst(7, "X")]))
    clock.now = at("2026-12-02 08:35") - 2 * POLL - 2  # the next morning, two looks before 08:35
    woke: list[tuple[float, int]] = []

    async def sleep(seconds: float) -> None:
        woke.append((clock.now, cache.loads))
        clock.now += seconds
        if len(woke) == 5:
            raise asyncio.CancelledError

    with pytest.raises(asyncio.CancelledError):
        await cache.refresh_daily(lambda: _value([inst(7, "Y")]), sleep=sleep)
    # (its clock may be an exchange's running faster than the machine's: it looks every POLL wall seconds)
    assert [loads for at_, loads in woke] == [1, 1, 1, 2, 2]
    assert cache.loaded_at == at("2026-12-02 08:35") and cache.listed == "2026-12-02"  # at 08:35, not a look late
    assert cache.token(7).tradingsymbol == "Y" and seen == [7, 7] and cache.loads == 2


def test_a_clock_moved_to_another_listing_day_either_way_makes_the_list_stale():
    """A worker's exchange clock is the machine's until it hears the exchange: a paper market on an earlier date
    (kite_sim --date) moves it back a day, and that day's list is the one to hold."""
    clock = Clock("2026-12-02 10:00")
    cache = InstrumentCache(clock)
    cache.load([inst(7, "X")])
    assert not cache.stale()
    clock.now = at("2026-12-01 10:00")
    assert cache.stale()
    cache.load([inst(7, "X")])
    clock.now = at("2026-12-02 08:34")
    assert not cache.stale()  # still 12-01's dump
    clock.now = at("2026-12-02 08:35")
    assert cache.stale()


async def test_the_next_trading_days_contracts_after_the_refresh_time(bus, tmp_path):
    """kite_sim lists new contracts every trading day: the cache shows them only once the refresh
    time has passed, and then every lookup is today's."""
    own = start_sim(tmp_path, seed=11, extra=PINNED)  # the day after an expiry lists the next weekly series
    try:
        settings = stack_settings(bus.nc.connected_url.geturl(), tmp_path / "var", own)
        await put_session(bus, vault_for(settings), "DEMO01", own.api_key, login(own))
        clients = KiteClients(bus, settings)
        clock = Clock("2026-12-01 09:00")
        clients.instruments.clock = clock
        first = await clients.instrument_list("DEMO01")
        assert clients.instruments["NSE:INFY"].instrument_token == 408065
        kite = await clients.client("DEMO01")
        listed = {i.tradingsymbol for i in first}
        own.admin("advance", {"seconds": 22500})  # the sim's next trading day lists new contracts

        async def new_listing():
            return {i.tradingsymbol for i in await kite.instruments("NFO")} - listed

        await eventually(new_listing, what="the next day's contracts at the sim")
        assert await clients.instrument_list("DEMO01") is first  # still before tomorrow's 08:35
        clock.now = at("2026-12-02 08:40")
        today = await clients.instrument_list("DEMO01")
        fresh = {i.tradingsymbol for i in today} - listed
        assert fresh and all(f"NFO:{s}" in clients.instruments for s in fresh)
        await clients.close()
    finally:
        own.stop()


def contract(token: int, name: str, kind: str, expiry: date, strike: float = 0, symbol: str = "") -> Instrument:
    symbol = symbol or f"{name}{expiry:%y%b}{int(strike) if strike else ''}{kind}".upper()
    return Instrument(instrument_token=token, exchange_token=token >> 8, tradingsymbol=symbol, name=name,
                      last_price=0, expiry=expiry, strike=strike, tick_size=0.05, lot_size=65, instrument_type=kind,
                      segment=f"NFO-{'FUT' if kind == 'FUT' else 'OPT'}", exchange="NFO")


def test_a_contract_is_found_by_the_words_a_trader_types():
    """The order form's search says "NIFTY 26 DEC 24000 CE": words that together match no symbol or name find
    the contracts carrying every one of them (it found nothing: the text was matched as one string)."""
    weekly, monthly = date(2026, 12, 8), date(2026, 12, 29)
    rows = [Instrument(instrument_token=256265, exchange_token=1001, tradingsymbol="NIFTY 50", name="NIFTY 50",
                       last_price=0, expiry=None, strike=0, tick_size=0, lot_size=0, instrument_type="EQ",
                       segment="INDICES", exchange="NSE"),
            contract(1, "NIFTY", "CE", weekly, 25500, "NIFTY26D0825500CE"),
            contract(2, "NIFTY", "PE", weekly, 25500, "NIFTY26D0825500PE"),
            contract(3, "NIFTY", "CE", monthly, 24000), contract(4, "NIFTY", "CE", monthly, 25500),
            contract(5, "NIFTY", "FUT", monthly), contract(6, "BANKNIFTY", "PE", monthly, 52000),
            contract(7, "NIFTYNXT50", "FUT", monthly), contract(8, "NIFTY", "CE", weekly, 24000.5, "NIFTY26D0824000.5CE")]
    cache = InstrumentCache()
    cache.load(rows)

    def found(q: str) -> list[int]:
        return [i.instrument_token for i in cache.search(q)]

    assert found("NIFTY 26 DEC 24000 CE") == [3]  # the form's own example
    assert found("nifty 25500 ce") == [1, 4]  # the weekly first (nearest expiry)
    assert found("NIFTY 8 DEC 25500 PE") == found("nifty 08 december 25500 pe") == [2]
    assert found("bankn 52000 pe") == [6]  # the name as typed so far
    assert found("NIFTY FUT") == [5, 7]  # the exact name before a name it only begins
    assert found("NIFTY 24000.5 CE") == [8]
    assert found("NIFTY 50")[0] == 256265  # a name with a space is still the index, not a word search
    assert found("NSE:NIFTY 50")[0] == 256265
    assert found("NIFTY 26 DEC 99999 CE") == [] and found("INFY 1500 CE") == []
