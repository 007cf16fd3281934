"""Identical reads of one user in flight together share one request to the worker (a dashboard asks for
the positions for its table and for its P&L); a read asked after a command that changes something never
joins one asked before it, and a reader that gives up does not cancel the others'. Against a real NATS
server and a real responder on the execution worker's subjects."""

import asyncio
from contextlib import aclosing

import msgspec

from gateway.trading import Trading, TradingError
from shared import messages as m
from shared import subjects
from tests.gateway.conftest import login
from tests.helpers import eventually, stack_settings


async def test_identical_reads_share_one_request_but_never_across_a_change(bus, data_dir):
    asked: list[str] = []
    answer = asyncio.Event()

    async def execution(cmd, user_id, msg):
        asked.append(type(cmd).__name__)
        await answer.wait()
        return m.Ok(data={"n": len(asked)})

    async def strategy(cmd, user_id, msg):  # its own subscription: not queued behind the held reads
        asked.append(type(cmd).__name__)
        return m.Ok(data={})

    subs = [await bus.serve(subjects.cmd_wildcard("execution"), execution),
            await bus.serve(subjects.cmd_wildcard("strategy"), strategy)]
    trading = Trading(bus, stack_settings(bus.nc.connected_url.geturl(), data_dir))
    try:
        first, second = (asyncio.ensure_future(trading.positions("DEMO01")) for _ in range(2))
        other_user = asyncio.ensure_future(trading.positions("DEMO02"))
        leaving = asyncio.ensure_future(trading.positions("DEMO01"))
        await eventually(lambda: len(asked) == 2, 10, "DEMO01's one request and DEMO02's")
        leaving.cancel()
        await trading.remove_strategy("DEMO01", "ema-1")  # a change: the next read is a request of its own
        after = asyncio.ensure_future(trading.positions("DEMO01"))  # queued behind the held one (a user's in order)
        answer.set()
        a, b, c, d = await asyncio.gather(first, second, other_user, after)
        assert a is b and a != d and msgspec.json.encode(c)  # the two first readers got the one answer
        assert sorted(asked) == ["GetPositions", "GetPositions", "GetPositions", "RemoveStrategy"]
        assert await trading.positions("DEMO01") and asked.count("GetPositions") == 4  # none in flight: asked again
    finally:
        await trading.close()
        for sub in subs:
            await sub.unsubscribe()


async def test_each_reader_keeps_its_own_patience_and_leaving_cancels_no_one(bus, data_dir):
    """Readers of one read in flight share its answer (``worker_commands._join``): one whose own timeout runs out
    gets its 503 while the others still get the answer, and one cancelled (a closed page) takes nothing away."""
    answer = asyncio.Event()
    asked: list[str] = []

    async def execution(cmd, user_id, msg):
        asked.append(type(cmd).__name__)
        await answer.wait()
        return m.Ok(data={"positions": []})

    sub = await bus.serve(subjects.cmd_wildcard("execution"), execution)
    trading = Trading(bus, stack_settings(bus.nc.connected_url.geturl(), data_dir))
    try:
        patient = asyncio.ensure_future(trading.command("DEMO01", "execution", m.GetPositions(), timeout=10.0))
        hasty = asyncio.ensure_future(trading.command("DEMO01", "execution", m.GetPositions(), timeout=0.2))
        leaving = asyncio.ensure_future(trading.command("DEMO01", "execution", m.GetPositions(), timeout=10.0))
        await eventually(lambda: asked == ["GetPositions"], 10, "the one request")
        try:
            await hasty
            raise AssertionError("the hasty reader waited past its own timeout")
        except TradingError as e:
            assert e.status == 503 and "did not answer within 0.2 s" in e.message
        leaving.cancel()
        answer.set()
        assert await patient == {"positions": []} and asked == ["GetPositions"]
        assert leaving.cancelled()
    finally:
        await trading.close()
        await sub.unsubscribe()


async def test_a_dashboard_load_asks_each_worker_once_for_its_reads(stack, bus):
    """A dashboard load's reads of the execution worker (positions, orders, the day's fills) go as one message,
    its strategy reads (signals, strategies) as one (Bus.read), the kill switch's summary in the execution batch
    (it was a request of its own on the risk subject): 50 loads at once were 7 requests each."""
    client, _ = await login(stack)
    async with aclosing(client):
        assert (await client.get("/")).status_code == 200  # the catalog, the pings and the ticker asked once
        seen: list[str] = []

        async def spy(msg) -> None:
            seen.append(".".join(msg.subject.split(".")[-2:]))  # service.verb

        sub = await bus.nc.subscribe(subjects.cmd("DEMO01", "execution", "x").rsplit(".", 2)[0] + ".>", cb=spy)
        await bus.sync()  # the spy is live at the server before the load asks (CI: the load's reads went by unseen)
        try:
            assert (await client.get("/")).status_code == 200
            await eventually(lambda: "execution.reads" in seen and "strategy.reads" in seen, 10, "the reads")
        finally:
            await sub.unsubscribe()
    asked = sorted(s for s in seen if not s.startswith("ticker."))
    assert asked == ["execution.reads", "strategy.reads"], seen  # the risk summary in the execution worker's batch


async def test_a_login_opens_the_desk_before_the_dashboard_it_leads_to(stack, bus):
    """The first dashboard of each trader opened the trader's desk in the execution worker and read the
    positions carried in: 50 first loads at once were slower than any later 50. The login asks for them
    (the desk, its kill switch, the carried positions, in one read of the execution worker) so the dashboard
    the login redirects to finds them open or joins them in flight; its own reads are still made."""
    asked: list[list[str]] = []

    async def spy(msg) -> None:
        if msg.subject.endswith(".reads"):
            cmds = m.command_decoder.decode(msg.data).commands
            asked.append(sorted(type(m.command_decoder.decode(c)).__name__ for c in cmds))

    sub = await bus.nc.subscribe(subjects.cmd("DEMO01", "execution", "x").rsplit(".", 1)[0] + ".*", cb=spy)
    await bus.sync()
    try:
        client, _ = await login(stack)
        async with aclosing(client):
            await eventually(lambda: asked, 10, "the login's read of the execution worker")
            assert asked == [["GetCarried", "GetPositions", "GetRiskSummary"]]
            trading = stack.services.trading
            await eventually(lambda: "DEMO01" in trading._carried and trading._catalog and trading._catalog.done(),
                             10, "the carried positions and the catalog kept")
            assert (await client.get("/")).status_code == 200
            await eventually(lambda: len(asked) == 2, 10, "the dashboard's own reads")
    finally:
        await sub.unsubscribe()
    assert "GetCarried" not in asked[1] and {"GetPositions", "GetRiskSummary"} <= set(asked[1])


async def test_a_dashboard_load_reads_the_gateway_database_in_four_statements(stack, bus):
    """The session, the preferences, the last Start's symbols, the recent alerts: one SELECT each (sqlite-utils'
    query() wrapped each in a savepoint, three statements)."""
    client, _ = await login(stack)
    statements: list[str] = []
    conn = stack.services.logins.db.conn
    async with aclosing(client):
        assert (await client.get("/")).status_code == 200  # the first load's one-offs (catalog, pings)
        conn.set_trace_callback(statements.append)
        try:
            assert (await client.get("/")).status_code == 200
        finally:
            conn.set_trace_callback(None)
    assert len(statements) == 4 and all(s.startswith("SELECT") for s in statements), statements


async def test_status_bars_share_a_round_of_pings_for_at_most_a_second(bus, data_dir):
    """50 dashboards one after another pinged the workers 16 rounds (each round shared only while in flight).
    A round that found every worker answering now serves the status bars for HEALTH_SECONDS; a worker that
    stops is shown down once that has passed, one found down is asked again each time (shown up as soon as
    it answers), and Start asks afresh whatever the age."""
    from gateway.trading import HEALTH_SECONDS, WORKERS

    pings: list[str] = []
    up = dict.fromkeys(WORKERS, True)

    def responder(service: str):
        async def on_ping(msg) -> None:
            pings.append(service)
            if up[service]:
                await msg.respond(m.encode(m.Ok(service=service)))
        return on_ping

    subs = [await bus.nc.subscribe(subjects.service_health(s), cb=responder(s)) for s in WORKERS]
    now = [1000.0]
    trading = Trading(bus, stack_settings(bus.nc.connected_url.geturl(), data_dir), clock=lambda: now[0])
    try:
        assert await trading.worker_health(HEALTH_SECONDS) == dict.fromkeys(WORKERS, True)
        for _ in range(5):
            assert await trading.worker_health(HEALTH_SECONDS) == dict.fromkeys(WORKERS, True)
        assert len(pings) == 3  # one round for six status bars
        assert await trading.worker_health() and len(pings) == 6  # a decision pings afresh

        up["strategy"] = False
        now[0] += HEALTH_SECONDS / 2
        assert (await trading.worker_health(HEALTH_SECONDS))["strategy"]  # within the bound: the last round's
        now[0] += HEALTH_SECONDS
        assert (await trading.worker_health(HEALTH_SECONDS))["strategy"] is False  # past it: asked, down
        asked = len(pings)
        up["strategy"] = True
        assert (await trading.worker_health(HEALTH_SECONDS))["strategy"]  # a down one is asked again at once
        assert len(pings) == asked + 3
    finally:
        await trading.close()
        for sub in subs:
            await sub.unsubscribe()


async def test_a_status_asks_the_ticker_once_and_together_with_the_rest(bus, data_dir):
    """The status bar's feed came from a GetStatus asked only after everything else had answered (one more
    round trip at the end of every dashboard load), and after a gateway restart the live tokens from another
    GetStatus. Now one GetStatus, asked with the rest: here the execution worker answers the kill switch only
    once the ticker has been asked (before: never, and the kill switch read UNKNOWN after its 2 s)."""
    from gateway.trading import WORKERS

    ticker_asked = asyncio.Event()
    asked: list[str] = []

    async def ticker(cmd, user_id, msg):
        asked.append(type(cmd).__name__)
        ticker_asked.set()
        return m.Ok(data={"tokens": {"256265": 1}, "picked": [256265], "feed": {"state": "live", "last_tick_age": 0.2}})

    async def execution(cmd, user_id, msg):
        await ticker_asked.wait()
        return m.Ok(data={"state": {"state": "ACTIVE"}})

    async def pong(msg) -> None:
        await msg.respond(m.encode(m.Ok()))

    subs = [await bus.serve(subjects.cmd_wildcard("ticker"), ticker),
            await bus.serve(subjects.cmd_wildcard("execution"), execution),
            *[await bus.nc.subscribe(subjects.service_health(s), cb=pong) for s in WORKERS]]
    await bus.sync()
    trading = Trading(bus, stack_settings(bus.nc.connected_url.geturl(), data_dir))
    try:
        status = await trading.status("DEMO01")  # just restarted: the live tokens unknown
        assert (status["kill_switch"], status["live_tokens"], status["feed"]["state"]) == ("ACTIVE", [256265], "live")
        assert asked == ["GetStatus"]  # one for the tokens and the feed (it was two)
        ticker_asked.clear()
        status = await trading.status("DEMO01")  # the tokens known: the feed still asked with the rest
        assert (status["kill_switch"], status["feed"]["state"], asked) == ("ACTIVE", "live", ["GetStatus"] * 2)
        trading.live_tokens["DEMO01"] = []  # not live: no feed to ask about
        status = await trading.status("DEMO01")
        assert (status["live"], status["feed"], len(asked)) == (False, {"state": "off"}, 2)
    finally:
        await trading.close()
        for sub in subs:
            await sub.unsubscribe()


def test_a_request_resolves_its_dependencies_one_at_a_time(data_dir):
    """``trading`` and ``user_id`` at one depth were resolved in an anyio task group on every request (two
    tasks and a cancel scope: 2-3 % of a dashboard load's gateway CPU); ``trading`` now takes ``user_id``."""
    from litestar.routes import HTTPRoute

    from gateway.app import create_app

    app = create_app(stack_settings("nats://127.0.0.1:1", data_dir))
    batched = {(route.path, method): [sorted(d.key for d in batch) for batch in model.dependency_batches]
               for route in app.routes if isinstance(route, HTTPRoute)
               for method, (_, model) in route.route_handler_map.items()}
    assert batched["/", "GET"] == [["user_id"], ["trading"]]
    assert not {path: b for path, b in batched.items() if any(len(batch) > 1 for batch in b)}


def test_templates_are_looked_up_in_a_plain_dict():
    """A dashboard includes ~24 partials; Jinja's default LRU cache took 13 µs a look-up (a lock, the key moved
    in a deque), a dict 3 µs. Every template is compiled at start and kept (there are ~60)."""
    from gateway.templating import compile_all, environment

    env = environment()
    assert type(env.cache) is dict
    assert compile_all(env) == len(env.cache) > 20


def test_the_form_macros_are_made_once_not_imported_per_render():
    """``{% import "partials/form_macros.html" as f %}`` computed the module's globals at every render (30 µs,
    twice a dashboard); the module is the environment's global ``f``, made once."""
    from gateway.templating import TEMPLATES, environment

    env = environment()
    assert env.globals["f"] is env.get_template("partials/form_macros.html").module
    assert not [p.name for p in TEMPLATES.rglob("*.html") if "{% import" in p.read_text()]


def test_a_symbol_chip_is_drawn_once_for_every_trader():
    """The live panel included ``partials/chip.html`` once per picked symbol: a trader live on 50 symbols made
    chips half of the dashboard's render. A chip is the same for everyone: drawn once (escaped as before),
    then the panel only places it."""
    from gateway.page_context import chip
    from gateway.templating import TEMPLATES, environment

    env = environment()
    html = chip(408065, "NSE:<b>INFY</b>")
    assert html == env.get_template("partials/chip.html").render(token=408065, label="NSE:<b>INFY</b>")
    assert "&lt;b&gt;INFY" in html and chip(408065, "NSE:<b>INFY</b>") is html
    panel = env.get_template("partials/live.html").render(chips=html)
    assert html in panel
    assert 'include "partials/chip.html"' not in (TEMPLATES / "partials" / "live.html").read_text()


async def test_a_page_names_its_media_type_instead_of_guessing_it(stack, bus):
    """Litestar guessed each page's media type from its file name (mimetypes per response; the first read
    the system's type files, ~8 ms of a fresh gateway's first load): the pages name it."""
    from litestar.testing import RequestFactory

    from gateway.page_context import page, partial

    request = RequestFactory().get("/")
    assert page("dashboard.html", request).media_type == partial("status", request).media_type == "text/html"
    client, _ = await login(stack)
    async with aclosing(client):
        r = await client.get("/")
    assert r.status_code == 200 and r.headers["content-type"] == "text/html; charset=utf-8"
