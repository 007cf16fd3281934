"""The option tools' partials: the open option book (greeks and payoff per underlying, the account's or
one strategy's) and a what-if payoff of the option strategies' structures on today's chain."""

from __future__ import annotations

from litestar import Controller, Request, get
from litestar.response import Template

from gateway.page_context import partial
from gateway.trading import Trading, TradingError


def _int(request: Request, name: str, default: int) -> int | None:
    raw = str(request.query_params.get(name) or default).strip()
    return int(raw) if raw.isdigit() else None


class OptionPagesController(Controller):
    include_in_schema = False

    @get("/ui/options/book")
    async def book(self, request: Request, trading: Trading, user_id: str, strategy: str = "") -> Template:
        try:
            book = await trading.option_book(user_id, strategy)
        except TradingError as e:
            return partial("option_book_view", request, book=None, book_error=e.message)
        return partial("option_book_view", request, book=book, book_error="")

    @get("/ui/options/structure")
    async def structure(self, request: Request, trading: Trading, user_id: str, structure: str = "iron_condor",
                        underlying: str = "NIFTY", expiry: str = "") -> Template:
        numbers = {n: _int(request, n, d) for n, d in (("lots", 1), ("steps", 2), ("wing", 2))}
        bad = [n for n, v in numbers.items() if v is None]
        if bad:
            return partial("structure_view", request, structure_error=f"{bad[0]}: a whole number is needed",
                           structure_field=bad[0])
        try:
            st = await trading.structure_payoff(user_id, underlying, structure, expiry.strip(), **numbers)
        except TradingError as e:
            return partial("structure_view", request, structure_error=e.message, structure_field=e.field)
        return partial("structure_view", request, st=st)
