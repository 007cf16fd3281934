"""sqlite-utils without its pandas import.

sqlite-utils imports pandas whenever it is installed, only to give ``pd.Timestamp`` a column type (kta
never stores one). pandas is installed wherever kta is — exchange-calendars and empyrical depend on it —
but no process needs it to open a SQLite file, and importing it cost every process that does ~0.5 s of CPU
before it served anything (the tests start dozens of workers and ``kta`` commands). Every kta module
imports sqlite-utils from here."""

from __future__ import annotations

import sys

_hide = "pandas" not in sys.modules
if _hide:
    sys.modules["pandas"] = None  # ``import pandas`` raises ImportError, as on a machine without it
try:
    from sqlite_utils import Database
    from sqlite_utils.db import NotFoundError
finally:
    if _hide:
        del sys.modules["pandas"]  # anything that needs pandas later (a backtest's metrics) imports it

__all__ = ["Database", "NotFoundError"]
