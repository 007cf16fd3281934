"""The lost-answer fault (``Faults.lose_answer_next``): the broker does what a call asked — a GTT is
created, an order placed — and the connection drops before its answer is complete, as a reset or a
proxy giving up mid-response leaves it. The client cannot tell whether its call took effect: exactly
the case where a caller must look the result up rather than send the call again. With
``lose_answer_effect`` off the connection drops before the broker acts: the same lost answer, nothing made."""

from __future__ import annotations

import logging

from litestar.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("kite_sim.faults")


class AnswerLost(Exception):
    """Raised after the response's start: uvicorn then closes the connection with the body unsent."""


def lose_answers(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        faults = scope["app"].state.sim.faults
        if not faults.lose_answer_next:
            await app(scope, receive, send)
            return
        if not faults.lose_answer_effect and faults.take_lost_answer(scope["method"], scope["path"]):
            log.info("fault: %s %s dropped before the broker acted, its answer lost", scope["method"], scope["path"])
            await send({"type": "http.response.start", "status": 200, "headers": []})
            raise AnswerLost(f"{scope['method']} {scope['path']}: the connection dropped, nothing done")
        lost = False

        async def maybe_lost(message) -> None:
            nonlocal lost
            if message["type"] == "http.response.start" and message["status"] == 200 \
                    and faults.take_lost_answer(scope["method"], scope["path"]):
                lost = True
                log.info("fault: %s %s done, its answer lost", scope["method"], scope["path"])
            elif message["type"] == "http.response.body" and lost:
                raise AnswerLost(f"{scope['method']} {scope['path']}: the connection dropped mid-answer")
            await send(message)

        await app(scope, receive, maybe_lost)

    return middleware
