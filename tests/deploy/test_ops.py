"""The gateway's /healthz, /readyz and /metrics (public, real uvicorn), a worker's metrics port, and
the counters the execution path increments — all against a real nats-server."""

from __future__ import annotations

import httpx

from execution_worker import main as execution
from shared import messages as m
from shared import natsd, partition
from shared import subjects as s
from shared.kite import tls
from strategy_worker import main as strategy
from tests.gateway.conftest import serve
from tests.helpers import eventually, running, stack_settings, wait_health
from ticker_worker import main as ticker


def _value(text: str, line_start: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(line_start + " "):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_ops_endpoints_are_public_and_report_readiness(nats_server, tmp_path, bus):
    gw = stack_settings(nats_server, tmp_path / "gw", gateway_port=natsd.free_port())
    metrics_port = natsd.free_port()
    ex = stack_settings(nats_server, tmp_path / "ex", metrics_port=metrics_port)
    async with serve(gw) as g, g.client() as client:  # no session cookie anywhere below
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        first = await client.get("/readyz")
        assert first.status_code == 503 and "execution" in first.json()["missing"]
        assert first.json()["checks"]["nats"] is True
        text = (await client.get("/metrics")).text
        assert "kta_sse_clients 0.0" in text
        assert (await client.get("/api/orders")).status_code == 401  # the guard still guards the rest

        async with running(execution.amain, ex), running(strategy.amain, stack_settings(nats_server, tmp_path / "st")), \
                running(ticker.amain, stack_settings(nats_server, tmp_path / "tk")):
            for svc in ("execution", "strategy", "ticker"):
                await wait_health(bus, svc)
            ready = await client.get("/readyz")
            assert ready.status_code == 200 and ready.json()["missing"] == []

            # a signal for a user with no broker session is refused, counted, and its consumer lag shown
            before = _value((await client.get("/metrics")).text, 'kta_signals_total{decision="refused"}') or 0
            sig = m.Signal(id="ops-sig-1", user_id="OPS01", strategy_id="a", strategy="rsi", exchange="NSE",
                           tradingsymbol="INFY", instrument_token=408065, transaction_type="BUY", quantity=1)
            await bus.js_publish(s.signals("OPS01"), sig, msg_id=sig.id)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{metrics_port}", timeout=5,
                                         verify=tls.context()) as worker:
                async def counted():
                    text = (await worker.get("/metrics")).text
                    return (_value(text, 'kta_signals_total{decision="refused"}') or 0) == before + 1 and text
                text = await eventually(counted, what="the refused signal counted")
                durable = f"execution-signals-p{partition.of('OPS01')}"
                lag = f'kta_nats_consumer_pending{{consumer="{durable}",stream="KTA_SIGNALS"}}'
                assert await eventually(lambda: _lag_seen(worker, lag), what="lag gauge")
                assert 'kta_worker_status{key="partitions",service="execution"} 8.0' in text


async def _lag_seen(worker: httpx.AsyncClient, line_start: str) -> bool:
    return _value((await worker.get("/metrics")).text, line_start) == 0.0
