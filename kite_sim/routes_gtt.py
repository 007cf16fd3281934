"""Kite's GTT routes: ``/gtt/triggers`` (list, place) and ``/gtt/triggers/{id}`` (get, modify, delete)."""

from __future__ import annotations

from litestar import Request, Response, delete, get, post, put

from kite_sim.envelope import form, ok
from kite_sim.kite_api import KiteController
from kite_sim.sim import Sim


class GttController(KiteController):
    path = "/gtt/triggers"

    @get()
    async def triggers(self, sim: Sim, user_id: str) -> Response:
        return ok([t.as_kite() for t in sim.broker.gtt.all(user_id)])

    @post(status_code=200)
    async def place(self, request: Request, sim: Sim, user_id: str) -> Response:
        return ok({"trigger_id": sim.broker.gtt.place(user_id, await form(request)).trigger_id})

    @get("/{trigger_id:int}")
    async def trigger(self, sim: Sim, user_id: str, trigger_id: int) -> Response:
        return ok(sim.broker.gtt.get(user_id, trigger_id).as_kite())

    @put("/{trigger_id:int}")
    async def modify(self, request: Request, sim: Sim, user_id: str, trigger_id: int) -> Response:
        return ok({"trigger_id": sim.broker.gtt.modify(user_id, trigger_id, await form(request)).trigger_id})

    @delete("/{trigger_id:int}", status_code=200)
    async def remove(self, sim: Sim, user_id: str, trigger_id: int) -> Response:
        return ok({"trigger_id": sim.broker.gtt.delete(user_id, trigger_id).trigger_id})
