"""What a trader's own read-only NATS key sees: one user's subjects and the message on each.

``kta users nats-creds ID`` issues the key (``shared/natsauth.AuthDir.issue_reader``); the server lets it
subscribe to exactly these subjects of that user and publish nothing. Payloads are MessagePack, shaped
as msgspec's JSON Schema of each message says (``docs/nats-schemas.json`` is generated from these
Structs by ``python -m shared.reader``; a test keeps it current)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import msgspec

from shared import messages as m

# subject under kta.u.<user>. -> the message published there
SUBJECTS: dict[str, object] = {
    "ticks.*": m.Tick,  # kta.u.<user>.ticks.<instrument_token>: the user's instruments only
    "signals": m.AnySignal,
    "orders": m.OrderEvent,
    "positions": m.PositionSnapshot,
    "risk": m.RiskState,
    "outcomes": m.StrategyOutcome,
    "alerts": m.Alert,
}
SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "nats-schemas.json"


def schemas() -> dict:
    """``{"subjects": {subject: {"$ref": ...}}, "$defs": {...}}`` from msgspec's JSON Schema."""
    names = list(SUBJECTS)
    refs, defs = msgspec.json.schema_components([SUBJECTS[n] for n in names],
                                                ref_template="#/$defs/{name}")
    return {"description": "Payloads (MessagePack) on kta.u.<user>.<subject> for a read-only NATS key",
            "subjects": {f"kta.u.<user>.{n}".replace(".*", ".<instrument_token>"): ref for n, ref in zip(names, refs)},
            "$defs": defs}


def render() -> str:
    return json.dumps(schemas(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMAS
    target.write_text(render())
    print(f"wrote {target}")
