"""Kite's response envelope: ``{"status": "success", "data": ...}`` or an error body with ``message`` and
``error_type`` at Kite's HTTP status, always ``application/json``."""

from __future__ import annotations

import json

from litestar import MediaType, Request, Response

from kite_sim.errors import KiteError


def ok(data) -> Response:
    return Response(json.dumps({"status": "success", "data": data}).encode(), media_type=MediaType.JSON)


def error_response(e: KiteError) -> Response:
    body = {"status": "error", "message": e.message, "data": None, "error_type": e.error_type}
    return Response(json.dumps(body).encode(), media_type=MediaType.JSON, status_code=e.status)


async def form(request: Request) -> dict:
    data = await request.form()
    return {k: data.get(k) for k in data.keys()}


async def json_list(request: Request) -> list[dict]:
    try:
        body = json.loads(await request.body() or b"[]")
    except ValueError:
        body = None
    if not isinstance(body, list) or not all(isinstance(o, dict) for o in body):
        raise KiteError("Invalid request body: expected a JSON array of orders.")
    return body
