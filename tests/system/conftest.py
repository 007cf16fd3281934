"""The whole-system tests: the long soak (``@pytest.mark.soak``) runs only when asked for with
``-m soak``; the CI-sized run is an ordinary test."""

import pytest


def pytest_collection_modifyitems(config, items):
    if "soak" in (config.option.markexpr or ""):
        return
    skip = pytest.mark.skip(reason="the long soak: run it with `pytest -m soak tests/system`")
    for item in items:
        if "soak" in item.keywords:
            item.add_marker(skip)
