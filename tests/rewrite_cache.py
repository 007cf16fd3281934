"""pytest's rewritten test modules, written once by the xdist controller before its workers start.

pytest caches each test module with its asserts rewritten (``__pycache__/*-pytest-*.pyc``), but not where
PYTHONDONTWRITEBYTECODE is set (as in this CI's environment): there each of the ``-n 4`` workers rewrote
all ~180 test modules and conftests again, about half of a worker's collection CPU. The controller writes
the cache here, with pytest's own rewrite of the same config; the workers then only read it (pytest reads
a valid cached pyc whatever the setting). A module pytest does not rewrite gains an unused file; one this
misses is rewritten by the workers as before. (pytest's rewrite functions are private API, pinned to
what pytest >= 8 has.)"""

from __future__ import annotations

import sys
from pathlib import Path

from _pytest.assertion.rewrite import (PYC_TAIL, _read_pyc, _rewrite_test, _write_pyc, assertstate_key, get_cache_dir,
                                       try_makedirs)

TESTS = Path(__file__).resolve().parent


def wanted(config) -> bool:
    """The controller of an xdist run, with rewriting on and the bytecode cache off."""
    return (sys.dont_write_bytecode and bool(getattr(config.option, "numprocesses", None))
            and not hasattr(config, "workerinput") and assertstate_key in config.stash)


def write(config) -> int:
    """Rewrite and cache every test module and conftest under tests/ that has no valid cached copy."""
    state = config.stash[assertstate_key]
    written = 0
    for fn in sorted(TESTS.rglob("*.py")):
        if not (fn.name.startswith("test_") or fn.name == "conftest.py"):
            continue
        cache_dir = get_cache_dir(fn)
        pyc = cache_dir / (fn.name[:-3] + PYC_TAIL)
        if _read_pyc(fn, pyc, state.trace) is not None:
            continue
        if not try_makedirs(cache_dir):  # a read-only checkout: the workers rewrite, as before
            return written
        try:
            source_stat, co = _rewrite_test(fn, config)
        except SyntaxError:  # reported by the worker that collects it, as a collection error of that module
            continue
        written += _write_pyc(state, co, source_stat, pyc)
    return written
