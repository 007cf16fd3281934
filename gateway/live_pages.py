"""Picking symbols and going live: active search, symbol chips, Start and Stop.

Stop answers with everything it changed, out of band, from its own reply: the session report, the
status bar (live or not is what the workers just confirmed, not what a later poll may say), the
"Live on …" note and the strategies' states. A status answer computed before the stop cannot
overwrite it afterwards: the status bar carries the time it was computed and ``kta.js`` keeps the newest.
"""

from __future__ import annotations

import asyncio

from litestar import Controller, Request, Response, get, post
from litestar.response import Template

from gateway.page_context import (
    STATUS_CHANGED, attempt, partial, picked, set_stream_ticks, status_context,
    skipped_note, strategy_list_context, went_live,
)
from gateway.trading import Trading


class LivePagesController(Controller):
    include_in_schema = False

    @get("/ui/symbols/search")
    async def search(self, request: Request, trading: Trading, user_id: str, q: str = "") -> Template:
        results, error = await attempt(trading.search_instruments(q, 20, user_id)) if q.strip() else ([], "")
        return partial("symbol_results", request, q=q, results=results or [], error=error)

    @get("/ui/symbols/pick")
    async def pick(self, request: Request, token: int, label: str = "") -> Template | Response:
        """A chip for the picked symbol; nothing when it is already picked (the chips come along)."""
        if str(token) in request.query_params.getall("tokens", []):
            return Response("", media_type="text/html")
        return partial("chip", request, token=token, label=label or str(token))

    @post("/ui/live/start", status_code=200)
    async def start(self, request: Request, trading: Trading, user_id: str) -> Template:
        form = await request.form()
        tokens = [t for t in form.getall("tokens", []) if isinstance(t, str)]
        result, error = await attempt(trading.start_live(user_id, tokens))
        if error:
            return partial("live_result", request, error=error)
        await went_live(request, user_id, result["tokens"])
        strategy = result.get("replies", {}).get("strategy") or {}
        names = ", ".join(p["label"] for p in picked(trading, result["tokens"]))
        count = strategy.get("strategies", 0)
        seeding = strategy.get("seeding") or {}
        history = (f"history of {seeding['total']} symbols loading at Start (a strategy trades once warm)."
                   if seeding.get("total") else "history loaded.")
        note = f"Live on {names}: {count} {'strategy' if count == 1 else 'strategies'}, {history}"
        if strategy.get("skipped"):
            note += f" Not traded: {skipped_note(strategy['skipped'])}."
        return partial("live_result", request, STATUS_CHANGED, note=note, oob_strategies=True,
                       **await strategy_list_context(trading, user_id))

    @post("/ui/live/stop", status_code=200)
    async def stop(self, request: Request, trading: Trading, user_id: str) -> Template:
        """Stop answers as soon as the workers confirm: the pill, the note and the strategies out of band,
        and a report placeholder that loads ``/ui/report`` (so no one request waits for both)."""
        form = await request.form()
        positions = "square_off" if form.get("positions") == "square_off" else "protect"
        result, error = await attempt(trading.stop_live(user_id, positions=positions))
        await set_stream_ticks(request, user_id, [])
        status, listing = await asyncio.gather(status_context(trading, user_id), strategy_list_context(trading, user_id))
        note = ""
        if result is not None:
            kept = ("open positions squared off" if positions == "square_off"
                    else "open positions kept, each protected by a stop-loss at the broker (hedged options by their wings)")
            note = f"Stopped: {', '.join(result['stopped']) or 'no'} worker(s) confirmed; {kept}."
            if result["missing"]:
                error = f"no answer from the {', '.join(result['missing'])} worker(s): they may still be live"
            if status["status"] is not None and "ticker" in result["stopped"]:
                status["status"] |= {"live": False, "live_tokens": []}  # what the ticker just confirmed
        return partial("stop_result", request, stop_note=note, stop_error=error, **status, **listing)
