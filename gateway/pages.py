"""The trader's dashboard: ``/`` (the full page) and its HTMX partials under ``/ui/...``, one template
each in ``web/templates/partials/``; the page is composed of the same partials.

Everything goes through the trading facade (``gateway.trading.Trading``); a refused request is shown
in words where it happened (the partial renders its error), so a form keeps its values and a failing
panel does not take the page down. Guarded app-wide: without a session pages redirect to /login.
Start/Stop and the symbol picker are in ``gateway.live_pages``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.response import Template

from gateway.page_context import (
    STATUS_CHANGED, account_context, attempt, holdings_context, live_panel, page, partial, pnl_context,
    positions_context, report_context, risk_context, skipped_note, status_context, strategies_context,
    strategy_list_context,
)
from gateway.option_chain import underlying_name
from gateway.scan_query import scan_command
from gateway.services import services_of
from gateway.strategy_form import parse_params, spec_of, symbols_of
from gateway.trading import Trading, TradingError


PANEL_ORDERS = 30  # the dashboard shows the latest; the order book (/orders) pages through the rest


class PagesController(Controller):
    include_in_schema = False

    @get("/")
    async def dashboard(self, request: Request, trading: Trading, user_id: str) -> Template:
        parts = await asyncio.gather(
            status_context(trading, user_id), account_context(trading, user_id),
            holdings_context(trading, user_id), strategies_context(trading, user_id),
            positions_context(trading, user_id), risk_context(trading, user_id), pnl_context(trading, user_id),
            attempt(trading.signals(user_id, 50)), attempt(trading.order_page(user_id, PANEL_ORDERS)))
        context: dict[str, Any] = {}
        for part in parts[:7]:
            context.update(part)
        (signals, signals_error), (orders, orders_error) = parts[7], parts[8]
        status = context["status"] or {}
        context.update(signals=signals or [], signals_error=signals_error, orders=(orders or {}).get("items", []),
                       orders_error=orders_error, recent_alerts=services_of(request).alerts.recent(user_id, 10),
                       **live_panel(trading, request, user_id, status))
        return page("dashboard.html", request, **context)

    # ---- status, account ----------------------------------------------------------------------

    @get("/ui/status")
    async def status(self, request: Request, trading: Trading, user_id: str) -> Template:
        return partial("status", request, **await status_context(trading, user_id))

    @get("/ui/account")
    async def account(self, request: Request, trading: Trading, user_id: str) -> Template:
        return partial("account", request, **await account_context(trading, user_id))

    @get("/ui/holdings")
    async def holdings(self, request: Request, trading: Trading, user_id: str) -> Template:
        return partial("holdings", request, **await holdings_context(trading, user_id, open_=True))

    # ---- strategies ---------------------------------------------------------------------------

    @get("/ui/strategies")
    async def strategies(self, request: Request, trading: Trading, user_id: str) -> Template:
        return partial("strategies", request, **await strategies_context(trading, user_id))

    @get("/ui/strategies/list")
    async def strategy_list(self, request: Request, trading: Trading, user_id: str) -> Template:
        return partial("strategy_list", request, **await strategy_list_context(trading, user_id))

    @get("/ui/strategies/form")
    async def strategy_form(self, request: Request, trading: Trading, user_id: str, strategy: str = "") -> Template:
        catalog, error = await attempt(trading.catalog(user_id))
        spec = spec_of(catalog or [], strategy)
        if spec is None and not error:
            error = f"unknown strategy {strategy!r}"
        return partial("strategy_fields", request, spec=spec, values={}, errors={"strategy": error} if error else {})

    @post("/ui/strategies", status_code=200)
    async def add_strategy(self, request: Request, trading: Trading, user_id: str) -> Template:
        form = await request.form()
        name = str(form.get("strategy") or "")
        catalog, error = await attempt(trading.catalog(user_id))
        spec = spec_of(catalog or [], name)
        if spec is None:
            message = error or f"strategy: choose one of {', '.join(s['name'] for s in catalog or [])}"
            return partial("strategies", request, **await strategies_context(
                trading, user_id, errors={"strategy": message}))
        params, values, errors = parse_params(spec, form)
        symbols_text = str(form.get("symbols") or "").strip()
        if not errors:
            try:
                result = await trading.add_strategy(user_id, name, params, symbols_of(symbols_text))
            except TradingError as e:  # the strategy worker names the field it refuses
                errors = {e.field or "params": e.message}
            else:
                added = result.get("strategy_id", name)
                if result.get("skipped"):
                    added += f"; it {skipped_note(result['skipped'])}"
                return partial("strategies", request, STATUS_CHANGED, **await strategies_context(
                    trading, user_id, selected=name, added=added))
        return partial("strategies", request, **await strategies_context(
            trading, user_id, selected=name, values=values, errors=errors, symbols=symbols_text))

    @delete("/ui/strategies/{strategy_id:str}", status_code=200)
    async def remove_strategy(self, request: Request, trading: Trading, user_id: str, strategy_id: str) -> Template:
        _, error = await attempt(trading.remove_strategy(user_id, strategy_id))
        context = await strategies_context(trading, user_id)
        if error:
            context["strategies_error"] = error
        return partial("strategies", request, STATUS_CHANGED, **context)

    @get("/ui/report")
    async def report(self, request: Request, trading: Trading, user_id: str) -> Template:
        return partial("report", request, **await report_context(trading, user_id))

    # ---- trading state ------------------------------------------------------------------------

    @get("/ui/positions")
    async def positions(self, request: Request, trading: Trading, user_id: str) -> Template:
        context = await positions_context(trading, user_id)
        if context["positions_error"]:
            return partial("error", request, message=context["positions_error"])
        return partial("positions_table", request, **context)

    @get("/ui/strategy-pnl")
    async def strategy_pnl(self, request: Request, trading: Trading, user_id: str) -> Template:
        return partial("strategy_pnl", request, **await pnl_context(trading, user_id))

    @get("/ui/orders")
    async def orders(self, request: Request, trading: Trading, user_id: str) -> Template:
        orders, error = await attempt(trading.order_page(user_id, PANEL_ORDERS))
        return partial("orders", request, orders=(orders or {}).get("items", []), orders_error=error)

    @get("/ui/signals")
    async def signals(self, request: Request, trading: Trading, user_id: str) -> Template:
        signals, error = await attempt(trading.signals(user_id, 50))
        return partial("signals", request, signals=signals or [], signals_error=error)

    @get("/ui/risk")
    async def risk(self, request: Request, trading: Trading, user_id: str) -> Template:
        return partial("risk", request, **await risk_context(trading, user_id))

    @post("/ui/risk/reset", status_code=200)
    async def reset_risk(self, request: Request, trading: Trading, user_id: str) -> Template:
        _, error = await attempt(trading.reset_risk(user_id, "reset from the dashboard"))
        context = await risk_context(trading, user_id)
        if error:
            context["risk_error"] = error
        return partial("risk", request, STATUS_CHANGED, **context)

    @get("/ui/option-chain")
    async def option_chain(self, request: Request, trading: Trading, user_id: str, underlying: str = "NIFTY",
                           expiry: str = "", shown: str = "") -> Template:
        """``shown`` is the underlying the form was showing: a different one starts at its nearest expiry."""
        if shown and underlying_name(shown) != underlying_name(underlying):
            expiry = ""
        chain, error = await attempt(trading.option_chain(user_id, underlying, expiry))
        return partial("option_chain", request, chain=chain, chain_error=error, underlying=underlying)

    @get("/ui/scanner")
    async def scanner(self, request: Request, trading: Trading, user_id: str) -> Template:
        """The scanner's results table (the form stays as typed); a refusal names its field in words."""
        try:
            scan = await trading.scan(user_id, scan_command(request.query_params.multi_items()))
        except TradingError as e:
            return partial("scan_results", request, scan=None, scan_error=e.message, scan_field=e.field)
        return partial("scan_results", request, scan=scan, scan_error="")
