"""What the expiry-day settlement tests share (``test_late_leg_expiry.py``, ``test_unheard_exit_expiry.py``): a
settling sim of their own opening on a weekly expiry day, and the day's NFO list."""

from __future__ import annotations

from tests.execution_worker.kit import broker
from tests.simkit import PINNED, start_sim


def expiry_day_sim(tmp_path_factory, name: str):
    """A settling sim pinned to a weekly expiry day (seed 37): the test moves its clock through the close."""
    return start_sim(tmp_path_factory.mktemp(name), seed=37, extra=("--settle", *PINNED))


async def nfo_list(kite) -> dict:
    return {f"{i.exchange}:{i.tradingsymbol}": i for i in await broker(kite.instruments, "NFO")}
