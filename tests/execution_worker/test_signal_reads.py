"""What judging a signal asks the broker: Kite answers 1 quote-class request a second per api_key (``/quote``,
``/quote/ltp``, ``/quote/ohlc``), so a read that another one answers already is a second of the signal's way to the
broker."""

import asyncio
import dataclasses

import pytest

from execution_worker import signals
from tests.execution_worker.kit import fresh_desk, signal

pytestmark = pytest.mark.slow(seconds=5)
QUOTE, LTP = "GET /quote", "GET /quote/ltp"
# kite_sim's second app: its own count and its own 1/s quote slot. On the package's app, a quote another test's
# desk asked in the same second (the sim counts the 429s too) read as this signal's second quote in the suite.
OTHER_APP = {"api_key": "kta-demo-2", "api_secret": "kta-demo-2-secret"}


async def test_a_stop_signal_on_a_new_instrument_is_priced_by_the_quote_that_reads_its_circuit_band(bus, sim, data_dir):
    """A signal with a stop needs the instrument's circuit band (``quote``) and its last price: the band's quote
    carries the price, so nothing asks ``ltp`` as well (before: an ``ltp``, then the ``quote`` a second later)."""
    app = dataclasses.replace(sim, **OTHER_APP)
    desk, kite, _ = fresh_desk(app, bus, data_dir)
    try:
        before = sim.get("/sim/requests", params={"api_key": app.api_key}).json()
        decision = await signals.judge(desk, signal("one-quote-1", qty=2, stop=147000))
        asked = sim.get("/sim/requests", params={"api_key": app.api_key}).json()
        assert decision.ok, decision
        assert desk.prices.known("NSE:INFY") == 150000
        assert asked.get(LTP, 0) - before.get(LTP, 0) == 0, (before, asked)
        assert asked.get(QUOTE, 0) - before.get(QUOTE, 0) == 1, (before, asked)
    finally:
        await desk.prices.close()
        await kite.aclose()


async def test_a_circuit_band_is_the_exchange_days_and_read_again_on_the_next(bus, sim, data_dir):
    """Bands are fixed for a trading day — the exchange's, not the machine's: a paper market at --sim-speed 60
    starts a new day every few minutes of the machine's one, and yesterday's band refused today's valid limit
    price (a trader's SBIN limit judged against ₹760.45–₹1,140.65 while the quote said ₹768–₹1,152)."""
    app = dataclasses.replace(sim, **OTHER_APP)
    desk, kite, _ = fresh_desk(app, bus, data_dir)
    try:
        assert (await signals.judge(desk, signal("band-day-1", qty=2, stop=147000))).ok
        band = desk.prices.known_bands(["NSE:INFY"])
        assert set(band) == {"NSE:INFY"}
        desk.exchange.heard(desk.exchange.now() + 86_400)  # the exchange's next day
        assert desk.prices.known_bands(["NSE:INFY"]) == {}
        before = sim.get("/sim/requests", params={"api_key": app.api_key}).json()
        assert (await signals.judge(desk, signal("band-day-2", qty=2, stop=147000))).ok
        asked = sim.get("/sim/requests", params={"api_key": app.api_key}).json()
        assert asked.get(QUOTE, 0) - before.get(QUOTE, 0) == 1, (before, asked)  # the new day's band read
        assert desk.prices.known_bands(["NSE:INFY"]) == band  # the sim's band for its day, now the exchange's
    finally:
        await desk.prices.close()
        await kite.aclose()


async def test_signals_judged_together_on_a_new_instrument_share_one_quote(bus, sim, data_dir):
    """A bar's first entries on an instrument come together (several strategies, several users on the worker's
    shared prices): its circuit band is read once for all of them, not once each of Kite's 1 quote a second."""
    app = dataclasses.replace(sim, **OTHER_APP)
    desk, kite, _ = fresh_desk(app, bus, data_dir)
    answered: list[str] = []  # quotes the broker answered (a 429 for another test's quote in the same second: retried)

    async def hook(response) -> None:
        if response.status_code != 429 and response.request.url.path == "/quote":
            answered.append(response.request.url.query.decode())

    kite._http.event_hooks["response"].append(hook)
    try:
        decisions = await asyncio.gather(*(signals.judge(desk, signal(f"together-{i}", qty=1, stop=147000))
                                           for i in range(4)))
        assert all(d.ok for d in decisions), decisions
        assert desk.prices.known_bands(["NSE:INFY"])
        assert answered == ["i=NSE%3AINFY"]
    finally:
        await desk.prices.close()
        await kite.aclose()
