"""What the expiry-day settlement tests share (``test_late_leg_expiry.py``, ``test_unheard_exit_expiry.py``): a
settling sim of their own opening on a weekly expiry day, and the day's NFO list."""

from __future__ import annotations

import pytest

from tests.execution_worker.kit import broker
from tests.simkit import PINNED, start_sim


@pytest.fixture(scope="module")
def late_sim(tmp_path_factory, request):
    """The module's own settling sim, pinned to a weekly expiry day (seed 37): its test moves the clock through the
    close (a test module uses it by importing it)."""
    s = start_sim(tmp_path_factory.mktemp(f"sim-{request.module.__name__.rsplit('.', 1)[-1]}"), seed=37,
                  extra=("--settle", *PINNED))
    yield s
    s.stop()


async def nfo_list(kite) -> dict:
    return {f"{i.exchange}:{i.tradingsymbol}": i for i in await broker(kite.instruments, "NFO")}
