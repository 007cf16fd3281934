"""The whole-system tests: the long soak (``@pytest.mark.soak``) runs only when asked for with
``-m soak``; the CI-sized run is an ordinary test. Their kite_sim settles each day (``--settle``): the
scenario crosses a day close."""

import pytest

from tests.simkit import start_sim


@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    s = start_sim(tmp_path_factory.mktemp("sim-system"), speed=60.0, extra=("--settle",))
    yield s
    s.stop()


@pytest.fixture(scope="module")
def expiry_day_sim(tmp_path_factory):
    """A settling sim opening on NIFTY's December monthly expiry: the scenario's day close is the expiry's."""
    s = start_sim(tmp_path_factory.mktemp("sim-system-expiry"), speed=60.0, extra=("--settle", "--date", "2026-12-29"))
    yield s
    s.stop()


def pytest_collection_modifyitems(config, items):
    if "soak" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the long soak: run it with `pytest -m soak tests/system`")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
