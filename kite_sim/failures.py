"""Failures that recur on every heartbeat (a bad instrument, an order whose matching raises) are logged
once per key with the traceback, and once more when they stop, not every 250 ms; the heartbeat goes on
with everything else."""

from __future__ import annotations

import logging
import sys
from collections.abc import Hashable


class Failures:
    def __init__(self, log: logging.Logger) -> None:
        self.log = log
        self.failing: dict[Hashable, str] = {}  # key -> the error it fails with

    def failed(self, key: Hashable, what: str) -> None:
        """Call inside ``except``: the first failure of ``key`` is logged with its traceback."""
        if key not in self.failing:
            self.failing[key] = repr(sys.exc_info()[1])
            self.log.exception("%s failed; left out until it recovers (logged once)", what)

    def ok(self, key: Hashable, what: str) -> None:
        if key in self.failing:
            self.log.info("%s recovered after %s", what, self.failing.pop(key))
