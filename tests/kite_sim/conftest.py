"""What every kite_sim test module shares: ``kite``, the official client logged in (through the real login
flow) to the module's own sim (each module defines its ``sim``)."""

from __future__ import annotations

import pytest
from kiteconnect import KiteConnect

from tests.kite_sim.kit import client


@pytest.fixture(scope="module")
def kite(sim) -> KiteConnect:
    return client(sim)
