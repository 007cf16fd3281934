"""A derivative held into its expiry, in a backtest: the exchange's final settlement, as kite_sim settles it
(``kite_sim/settlement.py``) and the execution worker books it live (``ExerciseHandler.settle``, the positions
cross-check's ``external`` fill): at the close of the expiry day, against the underlying's close —

- a future at the underlying's close (the final settlement price), no charges (nothing is traded);
- an option at its intrinsic value against it (cash; out of the money, worthless), a long in-the-money option
  paying STT on exercise (``shared/charges.exercise_stt``).

Without the underlying's price (a contract backtested without its index or stock) the contract's own last price
stands in. After its expiry a contract is gone from the day's instrument list (``listed``), as from Kite's dump."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

from shared.charges import exercise_stt
from shared.kite.models import Instrument
from shared.messages import to_paise


def expired(inst: Instrument, day: date) -> bool:
    """Whether ``inst`` has expired by the close of ``day``."""
    return inst.expiry is not None and inst.expiry <= day


def listed(instruments: list[Instrument], day: date) -> list[Instrument]:
    """The instruments still trading on ``day``: contracts that expired before it are not in its list."""
    return [i for i in instruments if i.expiry is None or i.expiry >= day]


def settlement_price(inst: Instrument, spot: int) -> int:
    """Paise per unit: a future's final settlement price is the underlying's close (``spot``); an option's, its
    intrinsic value against it."""
    if inst.instrument_type == "FUT":
        return spot
    strike = to_paise(inst.strike)
    return max(0, spot - strike) if inst.instrument_type == "CE" else max(0, strike - spot)


def settlement_cost(inst: Instrument, quantity: int, price: int, day: date) -> int:
    """Paise charged on settling ``quantity`` (signed, as held) at ``price``: STT on a long in-the-money option's
    exercise; nothing else (a settlement is no trade: no brokerage, no exchange charges)."""
    if inst.instrument_type not in ("CE", "PE") or quantity <= 0 or not price:
        return 0
    stt = exercise_stt(Decimal(price) * quantity / 100, on=day)
    return int((stt * 100).quantize(Decimal(1), ROUND_HALF_UP))


def describe(inst: Instrument, price: int) -> str:
    what = "the final settlement price (the underlying's close)" if inst.instrument_type == "FUT" else "its intrinsic value"
    return f"expired: settled at {what} ₹{price / 100:.2f}"
