"""A user whose broker session moves to another Kite app (a new api_key): the process's one client of the user is
replaced by a new one for that key and the old one closed (shared/kite/clients.py), and the user's open desk takes
the new client. Before, the desk kept the closed one: every broker call of it failed ("the client has been closed")
until the worker restarted."""

import dataclasses

from shared import messages as m
from shared import subjects
from shared.broker_sessions import put_session, vault_for
from tests.execution_worker.conftest import make_stack
from tests.execution_worker.kit import USER
from tests.helpers import eventually
from tests.simkit import login

OTHER_APP = {"api_key": "kta-demo-2", "api_secret": "kta-demo-2-secret"}  # kite_sim's second app
POSITIONS = "GET /portfolio/positions"


async def test_a_desk_takes_the_new_client_when_the_users_api_key_changes(bus, sim, data_dir):
    async with make_stack(bus, sim, data_dir) as (settings, _, _):
        async def positions():
            return await bus.request(subjects.cmd(USER, "execution", "positions"), m.GetPositions(), timeout=30)

        assert isinstance(await positions(), m.Ok)  # the desk open, on the first app's client
        other = dataclasses.replace(sim, **OTHER_APP)
        await put_session(bus, vault_for(settings), USER, other.api_key, login(other))

        async def read_through_the_new_app():
            answer = await positions()
            seen = sim.get("/sim/requests", params={"api_key": other.api_key}).json().get(POSITIONS, 0)
            return isinstance(answer, m.Ok) and seen

        before = await eventually(read_through_the_new_app, what="the desk's positions read with the new api_key")
        assert isinstance(await positions(), m.Ok)
        assert sim.get("/sim/requests", params={"api_key": other.api_key}).json()[POSITIONS] > before
