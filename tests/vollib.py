"""py_vollib, the independent reference the option tests compare prices and greeks with, imported at the
first call: the scipy.stats behind it cost every xdist worker ~1 CPU-s at collection (each worker
collects every module; one runs each of the three that use it). The names stand for py_vollib's own
functions and greeks modules."""

from __future__ import annotations

import importlib
import warnings


class _Lazy:
    def __init__(self, module: str, name: str = "") -> None:
        self._module, self._name = module, name

    def _target(self):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # py_vollib's own imports warn
            module = importlib.import_module(self._module)
        return getattr(module, self._name) if self._name else module

    def __call__(self, *args, **kwargs):
        return self._target()(*args, **kwargs)

    def __getattr__(self, attr: str):
        if attr.startswith("_"):  # what pytest's collection asks every module global (``__test__``, ...)
            raise AttributeError(attr)
        return getattr(self._target(), attr)


black = _Lazy("py_vollib.black", "black")
black_greeks = _Lazy("py_vollib.black.greeks.analytical")
black_delta = _Lazy("py_vollib.black.greeks.analytical", "delta")
black_iv = _Lazy("py_vollib.black.implied_volatility", "implied_volatility")
black_scholes = _Lazy("py_vollib.black_scholes", "black_scholes")
black_scholes_greeks = _Lazy("py_vollib.black_scholes.greeks.analytical")
