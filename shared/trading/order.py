"""One order as kta knows it: an ``Order`` per tag, changed only by ``apply(event)``.

The model is NautilusTrader's order state machine fitted to Kite: an order is created from its
request (INITIALIZED), moves through kta's own submission states (SUBMITTING, PLACED, UNKNOWN,
FAILED) and then lives Kite's statuses. Every source of truth — the submit answer, a WebSocket
update, a ``confirm`` read-back, a group wait, a reconciliation pass, a fill from the trade book, a
cancel kta asks for — is an event fed to ``apply``; the transition table refuses what would move
an order backwards (a late "OPEN" after "CANCELLED"). Kite's status strings are parsed once, here
(``CANCELLED AMO`` is CANCELLED). Fills are counted twice on purpose: ``filled_quantity`` is what
the broker reports, ``fill_quantity`` the sum of the fills journaled; positions come from the
latter, and an order whose two differ still owes the journal a fill.
"""

from __future__ import annotations

import enum
from typing import Union

from msgspec import Struct, field

from shared.messages import (
    Exchange,
    OrderRequest,
    OrderStatus,
    OrderType,
    Product,
    TransactionType,
    Validity,
    Variety,
    to_paise,
)
from shared.trading.planning import is_kta_tag, tag_fields


# kta's own states around Kite's statuses (the same names and values as shared.messages.OrderStatus)
OrderState = enum.StrEnum("OrderState", [
    ("INITIALIZED", "INITIALIZED"),  # planned and journaled, not sent
    ("SUBMITTING", "SUBMITTING"),  # request sent, no answer yet
    ("PLACED", "PLACED"),  # the broker answered with an order id; its first status is yet to be read
    ("UNKNOWN", "UNKNOWN"),  # the answer was lost: resolved by looking the tag up, never by a blind retry
    ("HELD", "HELD"),  # refused for want of the depository's eDIS authorisation (Kite's 428): nothing at the
    # broker; sent again (same tag) once the trader has authorised the shares, or withdrawn
    ("FAILED", "FAILED"),  # never reached the exchange: the order gate, a 429 or the broker's refusal
    *((status.name, status.value) for status in OrderStatus),
])

S = OrderState
TERMINAL = frozenset({S.COMPLETE, S.CANCELLED, S.REJECTED, S.FAILED})
NOT_FOUND = "NOT_FOUND"  # SubmitFailed code: a lost submit the broker's book never showed
WITHDRAWN = "WITHDRAWN"  # SubmitFailed code: a HELD order kta gave up (cancelled, stop, the day ended); never sent
REFUSED = "REFUSED"  # the state an OrderEvent carries for a signal risk refused (no order exists)
# Kite's statuses in the order an order lives them: submission, working (incl. modify / cancel in
# flight), final. A broker update may only move forward.
_SUBMISSION = [S.PUT_ORDER_REQ_RECEIVED, S.AMO_REQ_RECEIVED, S.VALIDATION_PENDING, S.OPEN_PENDING]
_WORKING = {S.OPEN, S.TRIGGER_PENDING, S.MODIFY_VALIDATION_PENDING, S.MODIFY_PENDING, S.MODIFIED, S.NOT_MODIFIED,
            S.CANCEL_PENDING, S.UPDATE}
_FINAL = {S.COMPLETE, S.CANCELLED, S.REJECTED}
_KITE = set(_SUBMISSION) | _WORKING | _FINAL
_AFTER_SUBMISSION = _WORKING | _FINAL
TRANSITIONS: dict[OrderState, frozenset[OrderState]] = {k: frozenset(v) for k, v in {
    S.INITIALIZED: {S.SUBMITTING, S.FAILED, S.UNKNOWN},  # UNKNOWN: adopted from the broker's book
    S.SUBMITTING: _KITE | {S.PLACED, S.UNKNOWN, S.FAILED, S.HELD},
    S.HELD: {S.SUBMITTING, S.FAILED},  # sent again after the authorisation, or withdrawn
    S.PLACED: _KITE,
    S.UNKNOWN: _KITE | {S.PLACED, S.FAILED, S.SUBMITTING},  # resolved by the tag lookup, whatever it says
    S.FAILED: _KITE | {S.PLACED, S.SUBMITTING},  # a "failed" submit the broker turns out to have, or a retry
    **{s: set(_SUBMISSION[i + 1:]) | _AFTER_SUBMISSION for i, s in enumerate(_SUBMISSION)},
    **{s: _AFTER_SUBMISSION for s in _WORKING},
    S.COMPLETE: set(),  # final; a late partial update never regresses it
    S.CANCELLED: {S.COMPLETE},  # a fill after a cancel: the real world allows it
    S.REJECTED: set(),
}.items()}


def can_move(current: OrderState, new: OrderState) -> bool:
    """Whether the table accepts ``current → new`` (the same state is a no-op, allowed)."""
    return current == new or new in TRANSITIONS[current]


def is_terminal(state: str) -> bool:
    """The one terminal test, for an OrderState or its string (journal rows, events)."""
    return state in _TERMINAL_NAMES


_TERMINAL_NAMES = frozenset(s.value for s in TERMINAL)


def parse_status(text: str | None) -> OrderState | None:
    """Kite's status string, parsed once: ``CANCELLED AMO`` → CANCELLED; None for one kta does not
    know (Kite's docs: treat an unknown status as non-terminal, so it moves nothing)."""
    if not text:
        return None
    try:
        return OrderState(OrderStatus.parse(text).value)
    except ValueError:
        return None


# ---- events ------------------------------------------------------------------------------------


class _Event(Struct, frozen=True, kw_only=True, tag_field="event"):
    ts: int = 0  # epoch ns kta saw it


class Submitted(_Event, tag="submitted"):
    """The request is about to leave kta (journaled first, so a crash never loses it)."""


class Placed(_Event, tag="placed"):
    order_id: str


class SubmitFailed(_Event, tag="submit_failed"):
    reason: str
    code: str = ""  # the gate's code, TooManyRequests, the broker's error type


class SubmitLost(_Event, tag="submit_lost"):
    reason: str


class SubmitHeld(_Event, tag="submit_held"):
    """The broker refused it until the depository authorises the shares it sells (HTTP 428)."""

    reason: str


class HeldAmended(_Event, tag="held_amended"):
    """New terms for a HELD order (never at the broker, so nothing to modify there): it is sent with them
    once the depository authorises it. 0 / "": unchanged."""

    quantity: int = 0
    price: int = 0
    trigger_price: int = 0
    order_type: str = ""


class BrokerUpdate(_Event, tag="broker_update"):
    """One broker view of the order (WebSocket, read-back, reconciliation), parsed once."""

    order_id: str
    state: OrderState | None  # None: a status kta does not know (moves nothing)
    status: str = ""  # Kite's own string, kept for the record
    status_message: str = ""
    quantity: int = 0
    filled_quantity: int = 0
    average_price: int = 0  # paise
    price: int = 0
    trigger_price: int = 0
    order_type: str = ""
    order_timestamp: str = ""
    exchange_timestamp: str = ""


class Fill(_Event, tag="fill"):
    """One trade of the order, from the broker's trade book, journaled once."""

    trade_id: str
    quantity: int
    price: int  # paise
    timestamp: str = ""  # Kite's fill_timestamp (IST)


class CancelRequested(_Event, tag="cancel_requested"):
    """kta asked for the cancel: the broker's "Cancelled by user" becomes kta's own reason."""

    reason: str


OrderEventAny = Union[Submitted, Placed, SubmitFailed, SubmitLost, SubmitHeld, HeldAmended, BrokerUpdate, Fill,
                      CancelRequested]


class Applied(Struct, frozen=True):
    """What an event did: ``ok`` False when the table refused it (nothing changed)."""

    ok: bool
    state_changed: bool = False
    filled: int = 0  # broker-reported fill quantity added
    journaled: int = 0  # journaled fill quantity added (a Fill)
    # the state this event left the order in: a reaction follows it, not the order's state when the reaction
    # runs (another event — the broker's REJECTED over the WebSocket — may have moved it meanwhile)
    state: OrderState | None = None


REFUSED_EVENT = Applied(False)
NOTHING = Applied(True)


# ---- the order ---------------------------------------------------------------------------------


class Order(Struct, kw_only=True):
    """A kta order. Identity: ``tag`` (deterministic from its origin, kind, leg and slice)."""

    tag: str
    user_id: str
    kind: str  # entry, exit, stop_loss, target, rollback, flatten, adopted, manual
    signal_id: str = ""
    group_id: str = ""
    strategy_id: str = ""
    leg: int = 0
    slice_no: int = 0
    exchange: str
    tradingsymbol: str
    instrument_token: int = 0
    transaction_type: TransactionType
    order_type: str
    product: str
    variety: str = "regular"
    validity: str = "DAY"
    quantity: int
    price: int = 0
    trigger_price: int = 0
    market_protection: int = 0
    state: OrderState = OrderState.INITIALIZED
    status: str = ""  # the broker's last status string ("REJECTED" for a failed submit, as Kite shows it)
    order_id: str = ""
    status_message: str = ""
    filled_quantity: int = 0
    average_price: int = 0
    order_timestamp: str = ""
    exchange_timestamp: str = ""
    fill_quantity: int = 0  # sum of the journaled fills
    trade_ids: list[str] = field(default_factory=list)
    cancel_reason: str = ""  # set when kta cancelled it
    failure: str = ""  # the code of a failed submit (NOT_FOUND: lost and never seen at the broker)
    day: str = ""  # the IST day it was created (journal bookkeeping)
    created_ts: str = ""

    @classmethod
    def from_request(cls, req: OrderRequest, *, strategy_id: str = "", created: str = "", day: str = "") -> "Order":
        """A new order for ``req``; ``created`` is the IST stamp it is journaled under, ``day`` the trading day
        it belongs to (the exchange's; by default the stamp's)."""
        slice_no = tag_fields(req.tag)[2] if is_kta_tag(req.tag) else 0
        return cls(tag=req.tag, day=day or created[:10], created_ts=created, user_id=req.user_id, kind=req.kind, signal_id=req.signal_id, group_id=req.group_id,
                   strategy_id=strategy_id, leg=max(0, req.leg_index), slice_no=slice_no, exchange=str(req.exchange),
                   tradingsymbol=req.tradingsymbol, instrument_token=req.instrument_token,
                   transaction_type=req.transaction_type, order_type=str(req.order_type), product=str(req.product),
                   variety=str(req.variety), validity=str(req.validity), quantity=req.quantity, price=req.price,
                   trigger_price=req.trigger_price, market_protection=req.market_protection)

    def request(self) -> OrderRequest:
        """The request it was made from: a HELD order is sent again exactly as it was, under its tag."""
        return OrderRequest(user_id=self.user_id, variety=Variety(self.variety), exchange=Exchange(self.exchange),
                            tradingsymbol=self.tradingsymbol, instrument_token=self.instrument_token,
                            transaction_type=self.transaction_type, order_type=OrderType(self.order_type),
                            quantity=self.quantity, product=Product(self.product), price=self.price,
                            trigger_price=self.trigger_price, validity=Validity(self.validity),
                            market_protection=self.market_protection, tag=self.tag, signal_id=self.signal_id,
                            group_id=self.group_id, leg_index=self.leg if self.group_id else -1, kind=self.kind)

    # ---- reading

    @property
    def is_terminal(self) -> bool:
        return self.state in TERMINAL

    @property
    def is_working(self) -> bool:
        """At the broker (or on its way) and not final: it may still fill."""
        return not self.is_terminal and self.state is not OrderState.INITIALIZED

    @property
    def sign(self) -> int:
        return 1 if self.transaction_type is TransactionType.BUY else -1

    @property
    def remaining(self) -> int:
        """What may still fill: 0 once final."""
        return 0 if self.is_terminal else max(0, self.quantity - self.filled_quantity)

    @property
    def unjournaled(self) -> int:
        """Fill quantity the broker reports that the journal does not have yet."""
        return max(0, self.filled_quantity - self.fill_quantity)

    @property
    def instrument(self) -> tuple[str, str]:
        return self.exchange, self.tradingsymbol

    @property
    def may_resubmit(self) -> bool:
        """Only a submit the broker provably never took may be sent again under the same tag."""
        return self.state is OrderState.FAILED and self.failure not in (NOT_FOUND, WITHDRAWN) and not self.order_id

    @property
    def is_protective(self) -> bool:
        return self.kind in ("stop_loss", "target")

    # ---- the one way to change it

    def apply(self, event: OrderEventAny) -> Applied:
        if isinstance(event, BrokerUpdate):
            return self._broker(event)
        if isinstance(event, Fill):
            if event.trade_id in self.trade_ids:
                return NOTHING
            self.trade_ids.append(event.trade_id)
            self.fill_quantity += event.quantity
            self.filled_quantity = max(self.filled_quantity, self.fill_quantity)
            return Applied(True, journaled=event.quantity)
        if isinstance(event, CancelRequested):
            self.cancel_reason = event.reason
            return NOTHING
        if isinstance(event, HeldAmended):
            if self.state is not S.HELD:
                return REFUSED_EVENT
            for name in ("quantity", "price", "trigger_price", "order_type"):
                if value := getattr(event, name):
                    setattr(self, name, value)
            return NOTHING
        if isinstance(event, Placed) and event.order_id == self.order_id and self.state in _AFTER_SUBMISSION:
            return NOTHING  # the broker's own update beat the POST's answer: no news
        new = {Submitted: S.SUBMITTING, Placed: S.PLACED, SubmitFailed: S.FAILED, SubmitLost: S.UNKNOWN,
               SubmitHeld: S.HELD}[type(event)]
        if not can_move(self.state, new):
            return REFUSED_EVENT
        if isinstance(event, Placed):
            self.order_id = event.order_id
        elif isinstance(event, SubmitFailed):
            # a HELD order given up was never at the broker and nobody refused it: Kite's word for it is CANCELLED
            status = "CANCELLED" if event.code == WITHDRAWN else "REJECTED"
            self.status, self.status_message, self.failure = status, event.reason, event.code
        elif isinstance(event, (SubmitLost, SubmitHeld)):
            self.status_message = event.reason
        return self._move(new)

    def _broker(self, u: BrokerUpdate) -> Applied:
        new = u.state or self.state
        if not can_move(self.state, new):
            return REFUSED_EVENT
        filled = max(0, u.filled_quantity - self.filled_quantity)
        self.order_id = u.order_id or self.order_id
        self.status = u.status or self.status
        message = u.status_message
        if new is S.CANCELLED and self.cancel_reason and (not message or "by user" in message.lower()):
            message = f"cancelled by kta: {self.cancel_reason}"
        self.status_message = message or ("" if new is not self.state else self.status_message)
        self.filled_quantity += filled
        if u.average_price:
            self.average_price = u.average_price
        for name in ("quantity", "price", "trigger_price"):
            value = getattr(u, name)
            if value:
                setattr(self, name, value)
        if u.order_type and self.order_type != "MARKET":  # a protected MARKET order shows as LIMIT at Kite
            self.order_type = u.order_type
        self.order_timestamp = u.order_timestamp or self.order_timestamp
        self.exchange_timestamp = u.exchange_timestamp or self.exchange_timestamp
        changed = self._move(new)
        return Applied(True, state_changed=changed.state_changed, filled=filled, state=new)

    def _move(self, new: OrderState) -> Applied:
        changed = new is not self.state
        self.state = new
        return Applied(True, state_changed=changed, state=new)


def broker_update(order, ts: int = 0) -> BrokerUpdate:
    """A Kite order (``shared.kite.models.Order``: rupee floats) as the event kta applies."""
    return BrokerUpdate(order_id=order.order_id, state=parse_status(order.status), status=order.status or "",
                        status_message=order.status_message or "", quantity=order.quantity or 0,
                        filled_quantity=order.filled_quantity or 0, average_price=to_paise(order.average_price or 0),
                        price=to_paise(order.price or 0), trigger_price=to_paise(order.trigger_price or 0),
                        order_type=order.order_type or "", order_timestamp=order.order_timestamp or "",
                        exchange_timestamp=order.exchange_timestamp or "", ts=ts)

