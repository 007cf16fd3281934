"""sqlite-utils, imported as a production install has it: without pandas.

sqlite-utils imports pandas whenever it is installed, only to give ``pd.Timestamp`` a column type (kta
never stores one). pandas is a test and bench dependency (the ``dev`` extra), absent from a production
install; where it is installed, importing it cost every process that opens a SQLite file ~0.5 s of CPU
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
