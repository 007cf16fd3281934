"""The depository's authorisation asked for BEFORE a delivery position's GTT stop needs it (eDIS/TPIN).

On an account without DDPI, a GTT leg that fires on settled delivery shares places a CNC sell that Kite
refuses with 428 until the day's TPIN authorisation is given: the stop would not sell exactly when the
price reached it. So every reconciliation pass of a trading day (the first one is at the open, or when the
desk opens) and right after a GTT is placed, kta compares what its GTT-protected delivery positions would
sell out of the demat account with what the depository has authorised today; what falls short is asked for
(one ``POST /portfolio/holdings/authorise`` for every instrument short), the trader is alerted with the
depository's link and each such position's protection row carries it until the holdings show it authorised.
The account needs it when its profile shows no demat consent (``meta.demat_consent`` empty: no DDPI or POA)
or a delivery sell met Kite's 428."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from execution_worker.alerts import alert
from execution_worker.engine import Desk
from shared.kite import errors
from shared.kite.models import Holding

log = logging.getLogger("kta.execution")
CNC = "CNC"


class AuthoriseAhead:
    def __init__(self, desk: Desk) -> None:
        self.desk = desk
        self.day = ""  # the trading day the profile was read and the asks below belong to
        self.needed = False  # the account has no DDPI/POA
        self.asked: dict[tuple[str, str], int] = {}  # instrument -> quantity asked for today
        self.links: dict[tuple[str, str], str] = {}  # instrument -> the link of its open ask (the dashboard's)
        self.lock = asyncio.Lock()
        self.ask_the_time: Callable[[], Awaitable[None]] | None = None  # the worker's (live.Desks): a quote's time

    def learned(self) -> None:
        """A delivery sell met Kite's 428: the account needs the depository's authorisation."""
        self.needed = True

    def link(self, exchange: str, tradingsymbol: str) -> str:
        return self.links.get((exchange, tradingsymbol), "")

    def soon(self) -> None:
        """A GTT was just placed: look at once rather than at the next pass."""
        self.desk.bus.spawn(self.check(), name=f"edis-ahead:{self.desk.user_id}")

    def _wanted(self) -> dict[tuple[str, str], int]:
        """Instrument -> the long delivery quantity kta's GTTs protect (what their stop legs would sell)."""
        out: dict[tuple[str, str], int] = {}
        for p in self.desk.protector.plans.values() if self.desk.protector else []:
            if p.product != CNC or not (p.gtt_ids or p.stop):
                continue
            held = self.desk.tracker.held(p.strategy_id, p.exchange, p.tradingsymbol)[0]
            if held > 0:
                out[(p.exchange, p.tradingsymbol)] = out.get((p.exchange, p.tradingsymbol), 0) + held
        return out

    async def check(self) -> None:
        async with self.lock:
            try:
                await self._check()
            except errors.KiteError as e:
                log.info("depository authorisation not checked: %s", e, extra={"user_id": self.desk.user_id})

    async def _new_day(self) -> None:
        """Authorisations last one trading day: a new day asks afresh (and reads the account's consent again)."""
        profile = await self.desk.client.profile()
        self.needed = self.needed or profile.meta.get("demat_consent", "consent") == ""
        self.day, self.asked, self.links = self.desk.journal.today(), {}, {}

    async def _check(self) -> None:
        desk = self.desk
        if self.day != desk.journal.today():
            await self._new_day()
        wanted = self._wanted() if self.needed else {}
        if not wanted:
            self.links = {}
            return
        # Kite's CNC positions are the day's: today's buys, not in the demat account yet. Read before the holdings:
        # a settlement between the two reads then shows the buys twice (asks nothing), never in neither
        bought = {(p.exchange, p.tradingsymbol): p.buy_quantity for p in (await desk.client.positions()).net
                  if p.product == CNC}
        holdings = {(h.exchange, h.tradingsymbol): h for h in await desk.client.holdings()}
        short = {k: (h, need) for k, qty in wanted.items() if (h := holdings.get(k)) is not None
                 and (need := _demat_part(h, qty - bought.get(k, 0))) > _free(h)}
        self.links = {k: v for k, v in self.links.items() if k in short}
        if not [k for k, (_, need) in short.items() if self.asked.get(k, 0) < need]:
            return
        if self.ask_the_time is not None:  # the day this ask belongs to: the exchange's now, not the last tick's
            await self.ask_the_time()      # (ticks stop at the close; a paper market may jump a day)
            if self.day != desk.journal.today():
                await self._new_day()
        ask = {k: v for k, v in short.items() if self.asked.get(k, 0) < v[1]}
        request_id = await desk.client.authorise_holdings([(h.isin, need) for h, need in ask.values()])
        link = desk.client.holdings_authorisation_url(request_id)
        for k, (_, need) in ask.items():
            self.asked[k], self.links[k] = need, link
        what = ", ".join(f"{need} {k[1]}" for k, (_, need) in ask.items())
        await alert(desk.bus, desk.user_id, "authorisation", f"Authorise {what} at the depository (eDIS/TPIN) today",
                    f"Your account has no DDPI: today the stop-loss GTTs kta keeps on your delivery shares ({what}) "
                    f"cannot sell them until you authorise them at the depository with your TPIN. Authorise at "
                    f"{link} before the price reaches a stop; kta checks the holdings and clears this once it "
                    f"shows authorised.", severity="critical", key=f"edis-ahead:{self.day}:{request_id}", link=link,
                    clock=desk.exchange)


def _demat_part(h: Holding, held: int) -> int:
    """What a sell of ``held`` (less today's buys) takes out of the demat account: it draws on the T1 shares
    first (Kite's rule)."""
    return min(max(0, held - h.t1_quantity), max(0, h.quantity - h.used_quantity))


def _free(h: Holding) -> int:
    """Authorised today and not sold yet."""
    return max(0, h.authorised_quantity - h.used_quantity)


def started(desk: Desk) -> AuthoriseAhead:
    desk.edis = AuthoriseAhead(desk)
    return desk.edis
