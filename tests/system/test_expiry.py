"""A future and two options held live through their expiry (``expiry.py``): settled by the broker at its close,
adopted by kta on the expiry day at the settlement prices, told to the strategies, protection gone, the expiry
day's P&L equal three ways (the report, FIFO from the journal, the broker's cash), the future rolled."""

import pytest

from tests.simkit import start_sim
from tests.system import expiry

pytestmark = [pytest.mark.slow(seconds=30), pytest.mark.timeout(300)]
MONTHLY_EXPIRY = "2026-12-29"  # NIFTY's December monthly: its future and monthly options expire


@pytest.fixture(scope="module")
def monthly_sim(tmp_path_factory):
    s = start_sim(tmp_path_factory.mktemp("sim-expiry"), speed=60.0, seed=31, extra=("--settle", "--date", MONTHLY_EXPIRY))
    yield s
    s.stop()


async def test_a_future_and_options_held_through_a_live_expiry(bus, monthly_sim, data_dir):
    report = await expiry.run(bus, monthly_sim, data_dir)
    print("; ".join(report.notes))
    assert not report.violations, "\n".join([*report.notes, *report.violations])
