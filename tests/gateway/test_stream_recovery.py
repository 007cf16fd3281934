"""A gateway that opens a trader's stream while the ticker worker does not answer (down, restarting, slow)
says the live state is not known — never "stopped" — and gives the stream the trader's ticks as soon as the
ticker answers, with no Start pressed: the stream stayed without ticks for good while the trader was live."""

from __future__ import annotations

import json
from contextlib import aclosing

import msgspec

from execution_worker.main import amain as execution_main
from shared import natsd
from shared import natsperms
from shared.partition import PARTITIONS
from strategy_worker.main import amain as strategy_main
from tests.gateway.conftest import connect_kite, forget_broker_sessions, login, serve
from tests.gateway.sse import SSE
from tests.helpers import running, running_together, wait_health
from ticker_worker.main import amain as ticker_main

INFY = 408065


async def test_a_stream_opened_while_the_ticker_is_away_gets_the_ticks_when_it_answers(gateway, gw_settings, gw_sim,
                                                                                         bus):
    await forget_broker_sessions(bus)
    async with running_together((strategy_main, gw_settings), (execution_main, gw_settings)):
        for service in ("strategy", "execution"):
            await wait_health(bus, service, timeout=40, partitions=PARTITIONS)
        a, csrf = await login(gateway)
        async with aclosing(a):
            await connect_kite(a, gw_sim)
            async with running(ticker_main, gw_settings):
                await wait_health(bus, "ticker")
                r = await a.post("/api/live/start", headers={"X-CSRF-Token": csrf}, json={"symbols": ["NSE:INFY"]})
                assert r.status_code == 200, r.text
            # the ticker is away; a gateway (re)started now knows nothing of the trader's live symbols
            try:
                async with serve(msgspec.structs.replace(gw_settings, gateway_port=natsd.free_port()),
                                 heartbeat=2.0) as second:  # a quiet stream stays open (the client reads for 15 s)
                    b, _ = await login(second)
                    async with aclosing(b):
                        status = (await b.get("/api/status")).json()
                        assert status["workers"]["ticker"] is False and status["live"] is not True
                        async with SSE(b, "/api/stream") as stream:
                            async with running(ticker_main, gw_settings):  # back: it restores what was wanted
                                ev = await stream.next_event(30)
                                while ev is not None and ev[1] != "ticks":
                                    ev = await stream.next_event(30)
                                assert ev is not None, "the stream went quiet: no tick once the ticker was back"
                                assert json.loads(ev[2])["instrument_token"] == INFY
                                assert (await b.get("/api/status")).json()["live_tokens"] == [INFY]
                                assert (await a.post("/api/live/stop", headers={"X-CSRF-Token": csrf},
                                                     json={})).status_code == 200
            finally:
                await (await bus.kv(natsperms.KV_TICKER)).delete("DEMO01")  # no later ticker restores INFY
