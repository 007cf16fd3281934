"""Derivatives at expiry. Index options settle in cash; stock options settle by delivery, so an in-the-money
stock option held into expiry becomes an obligation to take or give the shares (and its margin rises in
the days before). The ExerciseHandler warns about such positions, squares them off before a cut-off
time on expiry day, and once the contract has expired books each outcome — exercised, assigned or
expired, and a future's final settlement at the underlying's close — into the journal as the closing
trade at the settlement value."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, time as day_time

import msgspec
from msgspec import Struct, field

from execution_worker.journal import Journal
from shared.ist import IST
from shared.trading.planning import INDEX_UNDERLYINGS
from shared.messages import Exchange, OrderRequest, OrderType, Position, Product, TransactionType, to_paise

MARKET_CLOSE = day_time(15, 30)


class OptionContract(Struct, frozen=True, kw_only=True):
    tradingsymbol: str
    exchange: str
    underlying: str
    option_type: str  # CE or PE; FUT for a future (settled at the underlying's close)
    strike: int  # paise
    expiry: str  # yyyy-mm-dd
    lot_size: int = 1

    @property
    def settlement(self) -> str:
        return "cash" if self.underlying in INDEX_UNDERLYINGS else "physical"

    def intrinsic(self, spot: int) -> int:
        """The settlement price per unit against the underlying's close ``spot``: a future's is ``spot`` itself."""
        if self.option_type == "FUT":
            return spot
        return max(0, spot - self.strike) if self.option_type == "CE" else max(0, self.strike - spot)

    @classmethod
    def from_instrument(cls, inst) -> OptionContract:
        """From a Kite instrument (``shared.kite.models.Instrument``: rupee strike, date expiry)."""
        return cls(tradingsymbol=inst.tradingsymbol, exchange=inst.exchange, underlying=inst.name,
                   option_type=inst.instrument_type, strike=to_paise(inst.strike),
                   expiry=inst.expiry.isoformat() if inst.expiry else "", lot_size=inst.lot_size)


class ExerciseReview(Struct, kw_only=True):
    """``square_offs``: the orders due, shorts first; ``closing``: the position each one closes."""

    warnings: list[str] = field(default_factory=list)
    square_offs: list[OrderRequest] = field(default_factory=list)
    closing: list[Position] = field(default_factory=list)


class ExpiryOutcome(Struct, frozen=True, kw_only=True):
    tradingsymbol: str
    underlying: str
    outcome: str  # exercised (long ITM), assigned (short ITM), expired (OTM), settled (a future)
    settlement: str  # cash or physical
    quantity: int  # the option position, signed
    settlement_price: int  # intrinsic value per unit, paise
    value: int  # cash to the holder (+) or from the writer (-), paise
    delivery_quantity: int = 0  # shares of the underlying to take (+) or give (-), physical only
    strategy_id: str = ""  # whose position it closed, and the closing trade booked for it
    exchange: str = ""
    instrument_token: int = 0
    order_id: str = ""
    trade_id: str = ""


class ExerciseHandler:
    """``square_off_at`` is the IST time on expiry day from which ITM stock options are closed;
    ``warn_days`` how many days before expiry the delivery warning starts; ``itm_buffer_pct`` treats
    options this close to the money as in the money (the price can still cross)."""

    def __init__(self, user_id: str, journal: Journal, *, clock: Callable[[], float] = time.time,
                 square_off_at: day_time = day_time(14, 30), warn_days: int = 2, itm_buffer_pct: float = 0.5) -> None:
        self.user_id = user_id
        self.journal = journal
        self.clock = clock
        self.square_off_at = square_off_at
        self.warn_days = warn_days
        self.itm_buffer_pct = itm_buffer_pct
        self._warned: set[tuple[str, str]] = set()
        self._squared: set[tuple[str, str]] = set()

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), IST)

    def at_risk(self, contract: OptionContract, spot: int) -> bool:
        """In the money, or within the buffer of it."""
        buffer = contract.strike * self.itm_buffer_pct / 100
        return spot >= contract.strike - buffer if contract.option_type == "CE" else spot <= contract.strike + buffer

    def review(self, positions: Iterable[Position], contracts: dict[str, OptionContract],
               spots: dict[str, int]) -> ExerciseReview:
        """Warnings for physically settled options near expiry and in the money, and the square-off
        orders due (once per position and day). Each action is journaled as a risk event."""
        now = self._now()
        today = now.date().isoformat()
        review = ExerciseReview()
        for p in positions:
            contract = contracts.get(p.tradingsymbol)
            if not p.quantity or contract is None or contract.settlement != "physical" or contract.underlying not in spots:
                continue
            days_left = (date.fromisoformat(contract.expiry) - now.date()).days
            if days_left < 0 or days_left > self.warn_days or not self.at_risk(contract, spots[contract.underlying]):
                continue
            key = (today, p.tradingsymbol)
            if key not in self._warned:
                self._warned.add(key)
                message = (f"{p.tradingsymbol}: {p.quantity} in the money {days_left} day(s) before expiry; "
                           f"stock options settle by delivery of {contract.underlying} (margin rises)")
                review.warnings.append(message)
                self.journal.record_risk_event(self.user_id, code="EXERCISE_WARNING", message=message)
            if days_left == 0 and self.square_off_at <= now.time() < MARKET_CLOSE and key not in self._squared:
                self._squared.add(key)
                review.closing.append(p)
                self.journal.record_risk_event(self.user_id, code="EXERCISE_SQUARE_OFF",
                                               message=f"{p.tradingsymbol}: squaring off {p.quantity} before expiry")
        review.closing.sort(key=lambda p: p.quantity > 0)  # shorts first
        review.square_offs = [self._square_off(p) for p in review.closing]
        return review

    def _square_off(self, p: Position) -> OrderRequest:
        return OrderRequest(user_id=self.user_id, exchange=Exchange(p.exchange), tradingsymbol=p.tradingsymbol,
                            instrument_token=p.instrument_token,
                            transaction_type=TransactionType.SELL if p.quantity > 0 else TransactionType.BUY,
                            order_type=OrderType.MARKET, quantity=abs(p.quantity), product=Product(p.product),
                            market_protection=-1, kind="exit")

    def settle(self, positions: Iterable[Position], contracts: dict[str, OptionContract],
               settlement_prices: dict[str, int], now: datetime | None = None) -> list[ExpiryOutcome]:
        """After expiry (its close has passed, by ``now``: the exchange's clock, else this process's):
        book every expired option position at its settlement value as the closing trade and journal
        the outcome. Idempotent per position and expiry."""
        now = now or self._now()
        outcomes = []
        for p in positions:
            contract = contracts.get(p.tradingsymbol)
            if not p.quantity or contract is None or contract.underlying not in settlement_prices:
                continue
            expiry = date.fromisoformat(contract.expiry)
            if (now.date(), now.time()) < (expiry, MARKET_CLOSE):
                continue
            outcome = msgspec.structs.replace(
                self._outcome(p, contract, settlement_prices[contract.underlying]), strategy_id=p.strategy_id,
                exchange=p.exchange, instrument_token=p.instrument_token, trade_id=f"X{contract.expiry}",
                order_id=f"expiry:{p.strategy_id}:{p.tradingsymbol}")
            booked = self.journal.record_trade(
                self.user_id, trade_id=outcome.trade_id, order_id=outcome.order_id,
                exchange=p.exchange, tradingsymbol=p.tradingsymbol, instrument_token=p.instrument_token,
                transaction_type="SELL" if p.quantity > 0 else "BUY", quantity=abs(p.quantity),
                price=outcome.settlement_price, fill_timestamp=f"{contract.expiry} 15:30:00", product=p.product,
                strategy_id=p.strategy_id,
            )
            if booked:
                self.journal.record_risk_event(self.user_id, code=f"EXPIRY_{outcome.outcome.upper()}",
                                               message=_describe(outcome))
                outcomes.append(outcome)
        return outcomes

    @staticmethod
    def _outcome(p: Position, contract: OptionContract, spot: int) -> ExpiryOutcome:
        intrinsic = contract.intrinsic(spot)
        if contract.option_type == "FUT":
            outcome = "settled"
        elif not intrinsic:
            outcome = "expired"
        else:
            outcome = "exercised" if p.quantity > 0 else "assigned"
        delivery = 0
        if intrinsic and contract.settlement == "physical":
            delivery = -p.quantity if contract.option_type == "PE" else p.quantity
        return ExpiryOutcome(tradingsymbol=p.tradingsymbol, underlying=contract.underlying, outcome=outcome,
                             settlement=contract.settlement, quantity=p.quantity, settlement_price=intrinsic,
                             value=intrinsic * p.quantity, delivery_quantity=delivery)


def _describe(o: ExpiryOutcome) -> str:
    text = f"{o.tradingsymbol}: {o.quantity} {o.outcome} at {o.settlement_price} paise ({o.settlement}), value {o.value}"
    if o.delivery_quantity:
        side = "take" if o.delivery_quantity > 0 else "give"
        text += f"; {side} delivery of {abs(o.delivery_quantity)} {o.underlying}"
    return text
