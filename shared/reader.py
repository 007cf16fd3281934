"""What a trader's own read-only NATS key sees: one user's subjects and the message on each.

``kta users nats-creds ID`` issues the key (``shared/natsauth.AuthDir.issue_reader``); the server lets it
subscribe to exactly these subjects of that user and publish nothing. Payloads are MessagePack, shaped
as msgspec's JSON Schema of each message says (``docs/nats-schemas.json`` is generated from these
Structs by ``python -m shared.reader``; a test keeps it current)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import msgspec

from shared import messages as m
from shared import subjects

# a user's subject (built from the user id) -> the message published there
SUBJECTS: tuple[tuple[Callable[[str], str], object], ...] = (
    (lambda user_id: subjects.user_ticks(user_id, subjects.ANY), m.Tick),  # the user's instruments only
    (subjects.signals, m.AnySignal),
    (subjects.orders, m.OrderEvent),
    (subjects.positions, m.PositionSnapshot),
    (subjects.risk, m.RiskState),
    (subjects.outcomes, m.StrategyOutcome),
    (subjects.alerts, m.Alert),
)


def _shown(subject: str) -> str:
    """``kta.u.*.ticks.*`` → ``kta.u.<user>.ticks.<instrument_token>`` (for the schema document)."""
    tokens = subject.split(".")
    tokens[2] = "<user>"
    return ".".join("<instrument_token>" if t == "*" else t for t in tokens)
SCHEMAS = Path(__file__).resolve().parent.parent / "docs" / "nats-schemas.json"


def schemas() -> dict:
    """``{"subjects": {subject: {"$ref": ...}}, "$defs": {...}}`` from msgspec's JSON Schema."""
    refs, defs = msgspec.json.schema_components([kind for _, kind in SUBJECTS], ref_template="#/$defs/{name}")
    return {"description": "Payloads (MessagePack) on kta.u.<user>.<subject> for a read-only NATS key",
            "subjects": {_shown(subject(subjects.ANY)): ref for (subject, _), ref in zip(SUBJECTS, refs)},
            "$defs": defs}


def render() -> str:
    return json.dumps(schemas(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else SCHEMAS
    target.write_text(render())
    print(f"wrote {target}")
