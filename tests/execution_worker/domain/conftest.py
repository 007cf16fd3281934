import pytest

from shared.trading.risk import RiskManager

from .kit import USER, Clock, journal
from .risk_kit import LIMITS


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def risk(tmp_path, clock):
    """A RiskManager with the risk tests' LIMITS on a fresh journal, at ``clock``."""
    return RiskManager(USER, LIMITS, journal(tmp_path, clock), clock)
