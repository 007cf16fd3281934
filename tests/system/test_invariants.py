"""The whole system's trading invariants under randomised (seeded) faults — see ``scenario.py``: no
position above its limit, no exit grows a position, every open equity position has a working stop at
the broker for its full quantity and no option short goes uncovered by its strategy's long options, a
configured daily loss trips the kill switch and leaves the book flat with no entry after, kta's book
(journal) equals the broker's positions and the strategies' own books, the feed never silently stops,
no order placed twice, every fill journaled. The CI-sized run is part of the suite; the long soak runs
with ``pytest -m soak tests/system``."""

import pytest

from tests.system import scenario

pytestmark = [pytest.mark.slow(seconds=40), pytest.mark.timeout(300)]


async def test_invariants_hold_through_faults_and_a_worker_kill(bus, sim, data_dir, tmp_path):
    report = await scenario.run(bus, sim, data_dir, tmp_path, seed=20261201, seconds=30)
    print(report.line())
    assert not report.invariants.violations, "\n".join([report.line(), *report.invariants.violations])
    assert report.fills >= 10, report.line()  # it really traded


@pytest.mark.soak
@pytest.mark.timeout(1800)
@pytest.mark.parametrize("seed", [7, 11, 13])
async def test_soak(bus, sim, data_dir, tmp_path, seed):
    report = await scenario.run(bus, sim, data_dir, tmp_path, seed=seed, seconds=300, strategies=6)
    print(report.line())
    assert not report.invariants.violations, "\n".join([report.line(), *report.invariants.violations])


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_soak_across_an_expiry(bus, expiry_day_sim, data_dir, tmp_path):
    """The soak whose day close is NIFTY's monthly expiry: the condor's legs held at the close (opened and held from
    14:00 of the expiry day) are settled by the broker and adopted by kta (``expiry:`` fills), not carried; the next day's condor
    trades the next expiry."""
    report = await scenario.run(bus, expiry_day_sim, data_dir, tmp_path, seed=17, seconds=300, strategies=6,
                                condor_params={"hold_expiry": True})
    print(report.line())
    assert not report.invariants.violations, "\n".join([report.line(), *report.invariants.violations])
    assert report.settled, report.line()  # it really held legs into the expiry
