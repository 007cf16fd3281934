"""The dashboard's Jinja environment: one loader over ``web/templates``, autoescaping on, and the
display filters registered in one place (``configure``). Full pages (through Litestar's template
engine) and SSE fragments (``gateway.fragments``) render from the same environment, so a partial
looks the same whichever path drew it.

Filters:
* ``rupees`` — integer paise → ``₹1,23,456.78`` (Indian digit grouping, minus sign in front, joined
  to the ``₹`` by a word joiner so ``-₹32,435.00`` never wraps after the sign).
* ``inr`` — a rupee amount as Kite's REST answers carry it (float) → the same format.
* ``price`` — a tick price in rupees → ``24,512.35`` (no symbol; ticks are rupee floats).
* ``count`` — a quantity, volume or OI → ``12,34,567``.
* ``price_paise`` — integer paise as a price without the symbol → ``26,123.10``.
* ``pct`` — a percentage → ``12.34%``; ``None`` → ``–``.
* ``ist`` — epoch seconds, epoch nanoseconds or Kite's ``yyyy-mm-dd hh:mm:ss`` → ``HH:MM:SS`` IST.
* ``signed_class`` — ``pos`` / ``neg`` / ``""`` for green/red P&L cells.
* ``trading_state`` — the kill switch's state as a trader reads it: ``ACTIVE`` → "Trading allowed",
  ``REDUCING`` → "Reducing only", ``HALTED`` → "Halted" (a switch that is "ACTIVE" reads as tripped).
* ``params_text`` — a strategy's params as ``fast=3, slow=8`` (text for a tooltip, never markup).
* ``linked`` — a message with its ``http(s)://`` addresses as links shown by their host (the rest escaped): a
  held delivery sell's depository link in the order books, clickable where the trader reads it.
"""

from __future__ import annotations

import hashlib
import re
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from gateway.protection_rows import protection_rows
from gateway.structures import STRUCTURES
from shared import messages as m
from shared.ist import IST
from shared.messages import format_inr, group_indian, to_paise

TEMPLATES = Path(__file__).resolve().parent.parent / "web" / "templates"
STATIC = Path(__file__).resolve().parent.parent / "web" / "static"
DASH = "–"


WORD_JOINER = "\u2060"  # "-₹" may break after the hyphen; the joiner keeps the sign on the amount's line


@lru_cache(maxsize=4096)  # a dashboard draws the same few amounts (limits, zeros) for every trader, every load
def _format_paise(paise: int, symbol: str) -> str:
    return format_inr(paise, symbol, WORD_JOINER if symbol else "")


def rupees(paise: Any) -> str:
    if paise is None or paise == "":
        return DASH
    return _format_paise(int(paise), "₹")


def inr(amount: Any) -> str:
    if amount is None or amount == "":
        return DASH
    return _format_paise(to_paise(amount), "₹")


def price_paise(paise: Any) -> str:
    """Integer paise as a price without the rupee sign (dense tables): ``2612310`` → ``26,123.10``."""
    if paise is None or paise == "":
        return DASH
    return _format_paise(int(paise), "")


def price(amount: Any) -> str:
    if amount is None or amount == "":
        return DASH
    if isinstance(amount, float | int | Decimal | str):
        paise = int((Decimal(str(amount)) * 100).quantize(Decimal(1), rounding=ROUND_HALF_EVEN))
        return _format_paise(paise, "")
    return DASH


def count(value: Any) -> str:
    """A quantity, volume or OI with Indian digit grouping."""
    if value is None or value == "":
        return DASH
    number = int(value)
    return ("-" if number < 0 else "") + group_indian(str(abs(number)))


def pct(value: Any, digits: int = 2) -> str:
    if value is None or value == "":
        return DASH
    return f"{float(value):.{digits}f}%"


def ist(value: Any, with_date: bool = False) -> str:
    """A time of day in IST from whatever stamp kta carries."""
    if value is None or value == "" or value == 0:
        return DASH
    if isinstance(value, str):
        # Kite's "yyyy-mm-dd hh:mm:ss" is already IST; ISO stamps from the journal may carry an offset.
        try:
            stamp = datetime.fromisoformat(value)
        except ValueError:
            return value
        if stamp.tzinfo is not None:
            stamp = stamp.astimezone(IST)
    else:
        seconds = value / 1e9 if value > 10**12 else value
        stamp = datetime.fromtimestamp(seconds, IST)
    return stamp.strftime("%Y-%m-%d %H:%M:%S" if with_date else "%H:%M:%S")


def signed_class(value: Any) -> str:
    if value is None or value == "":
        return ""
    number = float(value)
    return "pos" if number > 0 else "neg" if number < 0 else ""


def trading_state(state: Any) -> str:
    if isinstance(state, dict):
        state = state.get("state")
    return m.trading_state(state)


def params_text(params: Any) -> str:
    if not isinstance(params, dict) or not params:
        return "default parameters"
    return ", ".join(f"{k}={'on' if v is True else 'off' if v is False else v}" for k, v in params.items())


URL = re.compile(r"https?://[^\s<>\"']+[^\s<>\"'.,;:)]")


def linked(text: Any) -> Markup:
    parts, last = [], 0
    text = str(text or "")
    for match in URL.finditer(text):
        url = match.group()
        shown = url.split("://", 1)[1].split("/", 1)[0] + "/… ↗"  # the host: a whole URL overflowed the column
        link = Markup('<a href="{0}" target="_blank" rel="noopener noreferrer" title="{0}">{1}</a>')
        parts += [escape(text[last:match.start()]), link.format(url, shown)]
        last = match.end()
    return Markup("").join([*parts, escape(text[last:])])


FILTERS = {"linked": linked,
           "count": count, "rupees": rupees, "inr": inr, "price": price, "price_paise": price_paise, "pct": pct,
           "ist": ist, "signed_class": signed_class, "trading_state": trading_state, "params_text": params_text}


@cache
def static_url(name: str) -> str:
    """``/static/<name>?v=<the file's digest>``: each release's file has its own URL, so browsers keep it a year
    (``headers.STATIC_CACHE``) instead of fetching it again on a later first load (Litestar's static files never
    answer 304), and never run an older script with a newer page. Read once per process, like the templates; a file
    that cannot be read is named as it is (a 404 for that file, never a page that fails to render)."""
    try:
        return f"/static/{name}?v={hashlib.sha256((STATIC / name).read_bytes()).hexdigest()[:12]}"
    except OSError:
        return f"/static/{name}"


@cache
def drawn_once(*names: str) -> Markup:
    """Partials that show nothing of the trader's where the dashboard includes them — the chart and the ticks fill
    from the stream, the option chain and the option tools when asked — drawn once per process, not per load
    (an include costs ~10 µs before it draws anything: it copies the page's whole context)."""
    env = environment()
    return Markup("".join(env.get_template(name).render(structures=STRUCTURES) for name in names))


def configure(env: jinja2.Environment) -> jinja2.Environment:
    """Register kta's filters on an environment (Litestar's engine passes its own)."""
    env.filters.update(FILTERS)
    env.globals.setdefault("static_url", static_url)
    env.globals.setdefault("drawn_once", drawn_once)
    env.globals.setdefault("DASH", DASH)
    env.globals.setdefault("protection_rows", protection_rows)
    return env


_DICT_ATTRIBUTES = frozenset(dir(dict))


class _Environment(jinja2.Environment):
    def getattr(self, obj: Any, attribute: str) -> Any:
        """``row.name`` on a plain dict (what the workers' replies decode to) looks the key up at once. Jinja asks
        ``getattr`` first and takes the key only after an AttributeError: ~140 such raises a dashboard (one in
        eight of its render's CPU). A dict's own attributes (``.items``, ``.get``, ...) still come first, so every
        lookup answers as before."""
        if type(obj) is dict and attribute not in _DICT_ATTRIBUTES:
            try:
                return obj[attribute]
            except KeyError:
                return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


@cache
def environment() -> jinja2.Environment:
    """The one environment for pages and fragments, built once."""
    env = _Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=jinja2.select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
        auto_reload=False,  # templates ship with the code: no stat of every template on every render
        # every template compiled at start (compile_all) is kept in a plain dict: Jinja's default LRU cache
        # locks and moves the key in a deque on each look-up, 13 µs per include against 3 (a dashboard has ~24)
        cache_size=-1,
    )
    configure(env)
    # the form macros as a global, made once: an ``{% import %}`` in a template computed its module's globals
    # again at every render (30 µs; a dashboard had two)
    env.globals["f"] = env.get_template("partials/form_macros.html").module
    return env


def compile_all(env: jinja2.Environment) -> int:
    """Compile every template now (at the gateway's start): the first dashboard would otherwise compile its
    ~30 templates (~200 ms of CPU, all 60 ~370 ms) on the event loop while every other request waits — the
    first loads after a start were twice the warm ones. Returns how many."""
    names = env.list_templates(filter_func=lambda name: name.endswith((".html", ".txt")))
    for name in names:
        env.get_template(name)
    return len(names)
