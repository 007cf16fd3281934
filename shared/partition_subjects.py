"""Where a user's partitioned messages are stored: the subject transforms the streams apply (the server's
FNV-1a ``partition()`` of the user id), the same hash computed here to route commands, and the way back from a
stored subject to the published one."""

from __future__ import annotations

import re

from nats.js.api import SubjectTransform

from shared import subjects

PARTITIONS = 8  # the most copies of one worker kind that get work; fixed: stored subjects carry it


def _partitioned(src: str) -> SubjectTransform:
    """``kta.u.*.signals`` → stored as ``kta.u.<user>.signals.<p>``: each ``*`` kept, the user's partition
    (the first ``*``) appended."""
    tokens, n = src.split("."), 0
    for i, token in enumerate(tokens):
        if token == "*":
            n += 1
            tokens[i] = "{{wildcard(%d)}}" % n
    return SubjectTransform(src=src, dest=".".join(tokens) + ".{{partition(%d,1)}}" % PARTITIONS)


TRANSFORMS: dict[str, SubjectTransform] = {
    subjects.STREAM_SIGNALS: _partitioned(subjects.signals(subjects.ANY)),
    subjects.STREAM_OUTCOMES: _partitioned(subjects.outcomes(subjects.ANY)),
    subjects.STREAM_BROKER: _partitioned(subjects.broker(subjects.ANY, subjects.ANY)),
}


def fnv1a32(text: str) -> int:
    h = 0x811C9DC5
    for b in text.encode():
        h = ((h ^ b) * 0x01000193) & 0xFFFFFFFF
    return h


def of(user_id: str, count: int = PARTITIONS) -> int:
    """The partition of a user: the same number nats-server's ``partition()`` transform computes."""
    return fnv1a32(subjects.user(user_id)) % count


def feed_subject(pattern: str, p: int) -> str:
    """A partition's slice of a transformed stream: ``kta.u.*.signals`` → ``kta.u.*.signals.3``."""
    return f"{pattern}.{p}"


_STORED = re.compile(r"^(kta\.u\.[A-Z0-9]+\.(?:signals|broker\.[a-z_]+))\.\d+$")


def published(subject: str) -> str:
    """The subject a message was published on, from the partitioned one it is stored under."""
    match = _STORED.match(subject)
    return match.group(1) if match else subject
