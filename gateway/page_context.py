"""What the dashboard's pages and partials render from: the page/partial responses, ``attempt`` (a
refusal in words instead of an exception), and one context builder per panel, shared by the full page
(``GET /``) and each panel's own route so a panel looks the same whichever path drew it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

from litestar import MediaType, Request
from litestar.response import Template
from markupsafe import Markup

from gateway.option_chain import ChainError
from gateway.services import services_of
from gateway.strategy_form import spec_of
from gateway.templating import environment
from gateway.trading import Trading, TradingError
from gateway.worker_commands import ready

STATUS_CHANGED = {"HX-Trigger": "kta:status"}  # the status bar re-fetches itself


async def attempt(call: Awaitable[Any]) -> tuple[Any, str]:
    """(result, "") or (None, the error in words)."""
    try:
        return await call, ""
    except TradingError as e:
        return None, e.message
    except ChainError as e:
        return None, str(e)


def _template(name: str, request: Request, headers: dict[str, str] | None, context: dict[str, Any]) -> Template:
    login = request.scope.get("auth")
    context.setdefault("user_id", login.user_id if login else "")
    context.setdefault("csrf", login.csrf_token if login else "")
    # named, not guessed: Litestar guessed it from the file name per response (mimetypes, whose first use
    # reads the system's type files: ~8 ms in a fresh gateway's first load)
    return Template(template_name=name, context=context, headers=headers, media_type=MediaType.HTML)


def page(name: str, request: Request, headers: dict[str, str] | None = None, **context: Any) -> Template:
    """A full page: with the user's preferences (theme, shortcuts), so it renders right the first time."""
    login = request.scope.get("auth")
    if login is not None:
        context.setdefault("prefs", services_of(request).prefs.get(login.user_id))
    return _template(name, request, headers, context)


def partial(name: str, request: Request, headers: dict[str, str] | None = None, **context: Any) -> Template:
    return _template(f"partials/{name}.html", request, headers, context)


CHIPS_KEPT = 4096
_CHIPS: dict[tuple[int, str], Markup] = {}  # (token, label) -> the chip's HTML, for at most CHIPS_KEPT symbols


def chip(token: int, label: str) -> Markup:
    """A picked symbol's chip (``partials/chip.html``): the same for every trader, so drawn once per symbol —
    an include per chip made the chips of a trader live on 50 symbols half of a dashboard's render."""
    html = _CHIPS.get((token, label))
    if html is None:
        if len(_CHIPS) >= CHIPS_KEPT:
            _CHIPS.clear()
        html = _CHIPS[(token, label)] = Markup(
            environment().get_template("partials/chip.html").render(token=token, label=label))
    return html


def picked(trading: Trading, tokens: list[int]) -> list[dict]:
    out = []
    for token in tokens:
        inst = trading.instruments.by_token.get(token)
        label = f"{inst.exchange}:{inst.tradingsymbol}" if inst else str(token)
        out.append({"token": token, "label": label, "chip": chip(token, label)})
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


async def strategy_list_context(trading: Trading, user_id: str) -> dict:
    """The strategies and whether the user is live (an "active" strategy of a stopped user is idle)."""
    (strategies, error), tokens = await asyncio.gather(attempt(trading.strategies(user_id)),
                                                       trading.live_tokens_soon(user_id))
    return {"strategies": strategies or [], "strategies_error": error, "live": tokens is None or bool(tokens)}


_FIELDS: dict[str, tuple[dict, Markup]] = {}  # strategy name -> (its catalog entry, its empty form fields)


def empty_fields(spec: dict) -> Markup:
    """The add-strategy form's fields for a catalog entry with nothing typed yet: the same for every trader
    and every load while the catalog is the same one (``Trading.catalog`` keeps it for a minute), so drawn
    once per catalog — drawing them was a third of a dashboard's render."""
    cached = _FIELDS.get(spec["name"])
    if cached is None or cached[0] is not spec:
        html = environment().get_template("partials/strategy_fields.html").render(spec=spec, values={}, errors={})
        _FIELDS[spec["name"]] = cached = (spec, Markup(html))
    return cached[1]


async def strategies_context(trading: Trading, user_id: str, selected: str = "", values: dict | None = None,
                             errors: dict[str, str] | None = None, added: str = "", symbols: str = "") -> dict:
    kept = trading.catalog_kept()
    (catalog, catalog_error), listing = await asyncio.gather(
        ready((kept, "")) if kept is not None else attempt(trading.catalog(user_id)),
        strategy_list_context(trading, user_id))
    catalog = catalog or []
    spec = spec_of(catalog, selected) or (catalog[0] if catalog else None)
    return {"catalog": catalog, "catalog_error": catalog_error, **listing, "spec": spec,
            "selected": spec["name"] if spec else "", "values": values or {}, "errors": errors or {},
            "added": added, "symbols": symbols,
            "fields_html": empty_fields(spec) if spec and not values and not errors else ""}


async def positions_context(trading: Trading, user_id: str) -> dict:
    snap, error = await attempt(trading.positions(user_id))
    return {"snap": snap, "positions_error": error}


async def risk_context(trading: Trading, user_id: str) -> dict:
    summary, error = await attempt(trading.risk_summary(user_id))
    state = (summary or {}).get("state")
    return {"rs": state if isinstance(state, dict) else None, "risk_error": error}


async def pnl_context(trading: Trading, user_id: str) -> dict:
    pnl, error = await attempt(trading.strategy_pnl(user_id))
    return {"pnl": pnl, "pnl_error": error}


async def report_context(trading: Trading, user_id: str) -> dict:
    """The session report: the day's journal summary (the day the P&L panel reports on), risk and
    execution summaries, P&L by strategy."""
    day, _ = await attempt(trading.trading_day(user_id))
    (journal, e1), (risk, e2), (execution, e3), pnl = await asyncio.gather(
        attempt(trading.journal_summary(user_id, day or "")), attempt(trading.risk_summary(user_id)),
        attempt(trading.execution_summary(user_id, day or "")), pnl_context(trading, user_id))
    return {"report_day": day or "", "journal": journal, "journal_error": e1, "risk_summary": risk,
            "risk_error": e2, "execution": execution, "execution_error": e3, **pnl}


async def set_stream_ticks(request: Request, user_id: str, tokens: list[int]) -> None:
    streams = services_of(request).streams
    if streams is not None:
        await streams.set_ticks(user_id, tokens)


async def went_live(request: Request, user_id: str, tokens: list[int]) -> None:
    """After a Start: the dashboard streams the symbols' ticks, and remembers them for the next Start."""
    await set_stream_ticks(request, user_id, tokens)
    services_of(request).prefs.remember_symbols(user_id, tokens)


def skipped_note(rows: list[dict]) -> str:
    """What strategies will not trade and why, from the strategy worker's ``skipped`` rows:
    "iron_condor-1 skips INFY, RELIANCE (no option chain)"."""
    by: dict[tuple[str, str], list[str]] = {}
    for row in rows:
        by.setdefault((row.get("strategy_id", ""), row["reason"]), []).append(row["symbol"])
    return "; ".join(f"{sid + ' ' if sid else ''}skips {', '.join(symbols)} ({reason})"
                     for (sid, reason), symbols in by.items())


LAST_SYMBOLS_NOTE = "Not live. Your last session's symbols are picked: Start trades them again."


def live_panel(trading: Trading, request: Request, user_id: str, status: dict) -> dict:
    """The live panel's chips: the symbols the user is live on, else those of the last Start (with a note)."""
    tokens = status.get("live_tokens") or []
    last = [] if tokens else services_of(request).prefs.last_symbols(user_id)
    unknown = status.get("live", False) is None  # the ticker did not say: not "Not live"
    chips = picked(trading, tokens or last)
    return {"chips": Markup("".join(p["chip"] for p in chips)),
            "live_note": LAST_SYMBOLS_NOTE if last and not unknown else ""}


