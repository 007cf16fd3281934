"""The trader's dashboard: ``/`` (the full page) and its HTMX partials under ``/ui/...``, one template
each in ``web/templates/partials/``; the page is composed of the same partials.

Everything goes through the trading facade (``gateway.trading.Trading``); a refused request is shown
in words where it happened (the partial renders its error), so a form keeps its values and a failing
panel does not take the page down. Guarded app-wide: without a session pages redirect to /login.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from litestar import Controller, Request, delete, get, post
from litestar.response import Template

from gateway import fragments
from gateway.option_chain import ChainError
from gateway.scan_query import scan_command
from gateway.services import services_of
from gateway.strategy_form import parse_params, spec_of, symbols_of
from gateway.trading import Trading, TradingError

STATUS_CHANGED = {"HX-Trigger": "kta:status"}  # the status bar re-fetches itself


async def attempt(call: Awaitable[Any]) -> tuple[Any, str]:
    """(result, "") or (None, the error in words)."""
    try:
        return await call, ""
    except TradingError as e:
        return None, e.message
    except ChainError as e:
        return None, str(e)


def page(name: str, request: Request, headers: dict[str, str] | None = None, **context: Any) -> Template:
    login = request.scope.get("auth")
    context.setdefault("user_id", login.user_id if login else "")
    context.setdefault("csrf", login.csrf_token if login else "")
    return Template(template_name=name, context=context, headers=headers)


def partial(name: str, request: Request, headers: dict[str, str] | None = None, **context: Any) -> Template:
    return page(f"partials/{name}.html", request, headers, **context)


def install_names(trading: Trading) -> None:
    """Tick rows name their instrument from the facade's instrument cache."""
    def name_of(token: int) -> str | None:
        inst = trading.instruments.by_token.get(token)
        return inst.tradingsymbol if inst is not None else None

    fragments.use_names(name_of)


def picked(trading: Trading, tokens: list[int]) -> list[dict]:
    out = []
    for token in tokens:
        inst = trading.instruments.by_token.get(token)
        out.append({"token": token, "label": f"{inst.exchange}:{inst.tradingsymbol}" if inst else str(token)})
    return out


# ---- context builders shared by the full page and the partial routes ---------------------------


async def status_context(trading: Trading, user_id: str) -> dict:
    status, error = await attempt(trading.status(user_id))
    return {"status": status, "status_error": error}


async def account_context(trading: Trading, user_id: str) -> dict:
    (profile, e1), (margins, e2) = await asyncio.gather(attempt(trading.profile(user_id)),
                                                        attempt(trading.margins(user_id)))
    return {"profile": profile or {}, "margins": margins or {}, "account_error": e1 or e2}


async def holdings_context(trading: Trading, user_id: str, open_: bool = False) -> dict:
    holdings, error = await attempt(trading.holdings(user_id))
    return {"holdings": holdings or [], "holdings_error": error, "open": open_}


async def strategies_context(trading: Trading, user_id: str, selected: str = "", values: dict | None = None,
                             error: dict | None = None, added: str = "", symbols: str = "") -> dict:
    (catalog, catalog_error), (strategies, strategies_error) = await asyncio.gather(
        attempt(trading.catalog(user_id)), attempt(trading.strategies(user_id)))
    catalog = catalog or []
    spec = spec_of(catalog, selected) or (catalog[0] if catalog else None)
    return {"catalog": catalog, "catalog_error": catalog_error, "strategies": strategies or [],
            "strategies_error": strategies_error, "spec": spec, "selected": spec["name"] if spec else "",
            "values": values or {}, "error": error, "added": added, "symbols": symbols}


async def positions_context(trading: Trading, user_id: str) -> dict:
    snap, error = await attempt(trading.positions(user_id))
    return {"snap": snap, "positions_error": error}


async def risk_context(trading: Trading, user_id: str) -> dict:
    summary, error = await attempt(trading.risk_summary(user_id))
    state = (summary or {}).get("state")
    return {"rs": state if isinstance(state, dict) else None, "risk_error": error}


async def report_context(trading: Trading, user_id: str) -> dict:
    (journal, e1), (risk, e2), (execution, e3) = await asyncio.gather(
        attempt(trading.journal_summary(user_id)), attempt(trading.risk_summary(user_id)),
        attempt(trading.execution_summary(user_id)))
    return {"journal": journal, "journal_error": e1, "risk_summary": risk, "risk_error": e2,
            "execution": execution, "execution_error": e3}


async def set_stream_ticks(request: Request, user_id: str, tokens: list[int]) -> None:
    streams = services_of(request).streams
    if streams is not None:
        await streams.set_ticks(user_id, tokens)


class PagesController(Controller):
    include_in_schema = False

    @get("/")
    async def dashboard(self, request: Request, trading: Trading, user_id: str) -> Template:
        install_names(trading)
        parts = await asyncio.gather(
            status_context(trading, user_id), account_context(trading, user_id),
            holdings_context(trading, user_id), strategies_context(trading, user_id),
            positions_context(trading, user_id), risk_context(trading, user_id),
            attempt(trading.signals(user_id, 50)), attempt(trading.orders(user_id)))
        context: dict[str, Any] = {}
        for part in parts[:6]:
            context.update(part)
        (signals, signals_error), (orders, orders_error) = parts[6], parts[7]
        status = context["status"] or {}
        context.update(signals=signals or [], signals_error=signals_error, orders=orders or [],
                       orders_error=orders_error, picked=picked(trading, status.get("live_tokens", [])))
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

    @get("/ui/strategies/form")
    async def strategy_form(self, request: Request, trading: Trading, user_id: str, strategy: str = "") -> Template:
        catalog, error = await attempt(trading.catalog(user_id))
        spec = spec_of(catalog or [], strategy)
        if spec is None and not error:
            error = f"unknown strategy {strategy!r}"
        return partial("strategy_fields", request, spec=spec, values={},
                       error={"field": "strategy", "message": error} if error else None)

    @post("/ui/strategies", status_code=200)
    async def add_strategy(self, request: Request, trading: Trading, user_id: str) -> Template:
        form = await request.form()
        name = str(form.get("strategy") or "")
        catalog, error = await attempt(trading.catalog(user_id))
        spec = spec_of(catalog or [], name)
        if spec is None:
            message = error or f"strategy: choose one of {', '.join(s['name'] for s in catalog or [])}"
            return partial("strategies", request, **await strategies_context(
                trading, user_id, error={"field": "strategy", "message": message}))
        params, values, bad = parse_params(spec, form)
        symbols_text = str(form.get("symbols") or "").strip()
        if bad is None:
            try:
                result = await trading.add_strategy(user_id, name, params, symbols_of(symbols_text))
            except TradingError as e:  # the strategy worker names the field it refuses
                bad = {"field": e.field or "params", "message": e.message}
            else:
                return partial("strategies", request, STATUS_CHANGED, **await strategies_context(
                    trading, user_id, selected=name, added=result.get("strategy_id", name)))
        return partial("strategies", request, **await strategies_context(
            trading, user_id, selected=name, values=values, error=bad, symbols=symbols_text))

    @delete("/ui/strategies/{strategy_id:str}", status_code=200)
    async def remove_strategy(self, request: Request, trading: Trading, user_id: str, strategy_id: str) -> Template:
        _, error = await attempt(trading.remove_strategy(user_id, strategy_id))
        context = await strategies_context(trading, user_id)
        if error:
            context["strategies_error"] = error
        return partial("strategies", request, STATUS_CHANGED, **context)

    # ---- symbols and live ---------------------------------------------------------------------

    @get("/ui/symbols/search")
    async def search(self, request: Request, trading: Trading, user_id: str, q: str = "") -> Template:
        results, error = await attempt(trading.search_instruments(q, 20, user_id)) if q.strip() else ([], "")
        return partial("symbol_results", request, q=q, results=results or [], error=error)

    @get("/ui/symbols/pick")
    async def pick(self, request: Request, token: int, label: str = "") -> Template:
        return partial("chip", request, token=token, label=label or str(token))

    @post("/ui/live/start", status_code=200)
    async def start(self, request: Request, trading: Trading, user_id: str) -> Template:
        form = await request.form()
        tokens = [t for t in form.getall("tokens", []) if isinstance(t, str)]
        result, error = await attempt(trading.start_live(user_id, tokens))
        if error:
            return partial("live_result", request, error=error)
        await set_stream_ticks(request, user_id, result["tokens"])
        install_names(trading)
        strategy = result.get("replies", {}).get("strategy") or {}
        names = ", ".join(p["label"] for p in picked(trading, result["tokens"]))
        count = strategy.get("strategies", 0)
        note = (f"Live on {names}: {count} {'strategy' if count == 1 else 'strategies'}, "
                f"{strategy.get('seeded_bars', 0)} bars seeded.")
        return partial("live_result", request, STATUS_CHANGED, note=note)

    @post("/ui/live/stop", status_code=200)
    async def stop(self, request: Request, trading: Trading, user_id: str) -> Template:
        result, error = await attempt(trading.stop_live(user_id))
        await set_stream_ticks(request, user_id, [])
        context = await report_context(trading, user_id)
        note = ""
        if result is not None:
            note = f"Stopped: {', '.join(result['stopped']) or 'no'} worker(s) confirmed."
            if result["missing"]:
                error = f"no answer from the {', '.join(result['missing'])} worker(s): they may still be live"
        return partial("report", request, STATUS_CHANGED, stop_note=note, stop_error=error, **context)

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

    @get("/ui/orders")
    async def orders(self, request: Request, trading: Trading, user_id: str) -> Template:
        orders, error = await attempt(trading.orders(user_id))
        return partial("orders", request, orders=orders or [], orders_error=error)

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
                           expiry: str = "") -> Template:
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
