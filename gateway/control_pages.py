"""The operator's controls on the dashboard: the per-user risk limits form (validated inline, effective
at once through the execution worker, which saves and audits them)."""

from __future__ import annotations

from litestar import Controller, Request, get, post
from litestar.response import Template

from gateway.limits_form import FIELDS, form_values, parse_limits
from gateway.page_context import STATUS_CHANGED, attempt, partial
from gateway.trading import Trading


class ControlPagesController(Controller):
    include_in_schema = False

    @get("/ui/limits")
    async def limits(self, request: Request, trading: Trading, user_id: str) -> Template:
        limits, error = await attempt(trading.risk_limits(user_id))
        return partial("limits_form", request, fields=FIELDS, values=form_values(limits or {}), errors={},
                       limits_error=error)

    @post("/ui/limits", status_code=200)
    async def save_limits(self, request: Request, trading: Trading, user_id: str) -> Template:
        limits, values, errors = parse_limits(await request.form())
        saved, error = "", ""
        if limits is not None:
            _, error = await attempt(trading.set_risk_limits(user_id, limits))
            if not error:
                saved = "Saved: in force for the next order."
        headers = STATUS_CHANGED if saved else None
        return partial("limits_form", request, headers, fields=FIELDS, values=values, errors=errors,
                       limits_error=error, saved=saved)
