"""The demat side of an account: CDSL eDIS / TPIN authorisation of delivery sells.

An account opened without DDPI (or a physical POA) must authorise, each trading day, the shares it sells
out of its demat holdings. Kite then answers a CNC sell of unauthorised delivered shares with HTTP 428
("N quantity needs authorisation at depository"); ``POST /portfolio/holdings/authorise`` (optionally
``isin``/``quantity`` pairs) returns a ``request_id``; the user authorises on the depository's page
(``/connect/portfolio/authorise/holdings/{api_key}/{request_id}``), and the authorisation lasts the
trading day. The sim's accounts have DDPI unless set otherwise (``--edis USER`` or ``POST /sim/accounts``):
existing flows are unchanged.

Only settled shares need it. Shares bought today (CNC) and T1 shares (bought the previous trading day) are
not in the demat account yet: a delivery sell draws on them first (an intraday or BTST sell needs no TPIN),
and only what it takes from the demat account must be authorised.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from kite_sim.errors import KiteError

if TYPE_CHECKING:
    from kite_sim.orders import Holding


def isin_of(token: int) -> str:
    """The sim's stand-in ISIN of an equity (shown in holdings)."""
    return f"INE{token % 1000000:06d}01"


def authorisation_required(quantity: int) -> KiteError:
    return KiteError(f"{quantity} quantity needs authorisation at depository", "HoldingException", 428)


@dataclass
class Depository:
    edis: bool = False  # no DDPI/POA: delivery sells need the day's TPIN authorisation
    day: str = ""  # the trading day the authorisations below belong to
    authorised: dict[int, int] = field(default_factory=dict)  # token -> quantity authorised today
    used: dict[int, int] = field(default_factory=dict)  # token -> authorised quantity sold today
    undelivered: dict[int, int] = field(default_factory=dict)  # token -> sold today out of today's buys and T1
    requests: dict[str, dict[int, int] | None] = field(default_factory=dict)  # id -> {token: qty}, None = all

    def roll(self, day: str) -> None:
        """Authorisations and open requests last one trading day."""
        if day != self.day:
            self.day, self.authorised, self.used, self.undelivered, self.requests = day, {}, {}, {}, {}

    def check_sell(self, token: int, quantity: int, holding: Holding | None, bought_today: int = 0) -> None:
        """A CNC sell of ``quantity``: it draws first on what is not in the demat account (``bought_today``, the
        day's CNC buys, and the T1 shares), then on the demat account; raise Kite's 428 when that part is not
        authorised, otherwise count what it used."""
        if not self.edis or holding is None:
            return
        outside = bought_today + holding.t1_quantity - self.undelivered.get(token, 0)
        from_outside = min(quantity, max(outside, 0))
        from_demat = min(quantity - from_outside, holding.quantity)
        free = self.authorised.get(token, 0) - self.used.get(token, 0)
        if from_demat > free:
            raise authorisation_required(from_demat - max(free, 0))
        self.undelivered[token] = self.undelivered.get(token, 0) + from_outside
        if from_demat:
            self.used[token] = self.used.get(token, 0) + from_demat

    def request(self, wanted: dict[int, int] | None) -> str:
        """A new authorisation request for ``wanted`` ({token: quantity}; None: every holding)."""
        request_id = secrets.token_urlsafe(24)
        self.requests[request_id] = wanted
        return request_id

    def authorise(self, request_id: str, holdings: dict[int, Holding]) -> dict[int, int]:
        """The user entered the TPIN for ``request_id``: its shares are authorised for the day."""
        wanted = self.requests.pop(request_id)
        grant = {t: h.quantity for t, h in holdings.items()} if wanted is None else wanted
        for token, qty in grant.items():
            held = holdings[token].quantity if token in holdings else 0
            self.authorised[token] = min(held, self.authorised.get(token, 0) + qty)
        return grant

    def state(self) -> dict:
        return {"edis": self.edis, "day": self.day, "authorised": list(self.authorised.items()),
                "used": list(self.used.items()), "undelivered": list(self.undelivered.items()),
                "requests": {k: None if v is None else list(v.items()) for k, v in self.requests.items()}}

    @classmethod
    def from_state(cls, doc: dict) -> Depository:
        return cls(doc["edis"], doc["day"], dict(map(tuple, doc["authorised"])), dict(map(tuple, doc["used"])),
                   dict(map(tuple, doc.get("undelivered", []))),
                   {k: None if v is None else dict(map(tuple, v)) for k, v in doc["requests"].items()})
