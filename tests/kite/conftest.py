import pytest

from shared.kite.client import KiteClient
from shared.kite.ratelimit import for_api_key
from tests.kite.kit import RecordingTransport
from tests.simkit import login


@pytest.fixture
async def kite(sim):
    """A KiteClient logged in to the package's sim, recording its exchanges on ``kite.wire``; faults off."""
    sim.reset_faults()
    transport = RecordingTransport()
    async with KiteClient(sim.api_key, login(sim), root=sim.root, transport=transport,
                          rate_limiter=for_api_key(sim.api_key)) as client:
        client.wire = transport
        yield client
    sim.reset_faults()
