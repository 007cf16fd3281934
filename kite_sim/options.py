"""kite_sim's own flags and what they set (``python -m kite_sim`` and ``kta sim`` parse the same ones),
kept apart from the server so the command line can list them without importing it."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date
from pathlib import Path


@dataclass
class Options:
    """What ``kta sim`` adds to the settings: replay, market hours, settlement, the snapshot file."""

    replay: str = ""  # CSV of candles that replaces the generator for its symbols
    market_hours: bool = False  # calendar clock: closed nights, weekends and holidays; AMOs wait for the open
    holidays: frozenset[date] | None = None  # None: the exchange calendar's; a set: these days (and weekends) only
    settle: bool = False  # end-of-day settlement: T+1 holdings, MIS square-off, expiry
    snapshot: str = ""  # state file, loaded at start and saved on change and at shutdown
    faults: str = ""  # JSON file of faults to start with (the fields of /sim/faults)
    edis: frozenset[str] = frozenset()  # accounts without DDPI: delivery sells need the day's eDIS authorisation
    tls_cert: str = ""  # PEM certificate chain: serve https/wss as the real Kite does (with tls_key)
    tls_key: str = ""
    start_date: date | None = None  # the first trading day (its session open); None: today in IST
    token_expiry_hour: int = 6  # access tokens die at this hour IST (Kite's: 06:00), by the wall clock


def parse_holidays(text: str) -> frozenset[date] | None:
    """``2026-12-25,2027-01-26`` or the path of a file with one ISO date per line (``#`` comments); ``none``:
    weekends only; empty: None (the exchange calendar)."""
    if not text:
        return None
    if text.strip().lower() == "none":
        return frozenset()
    p = Path(text)
    items = p.read_text().split() if p.exists() else text.split(",")
    return frozenset(date.fromisoformat(x.strip()) for x in items if x.strip() and not x.startswith("#"))


def add_options(p: argparse.ArgumentParser) -> None:
    """The flags of ``python -m kite_sim`` and ``kta sim``: where it listens, its market, :class:`Options`."""
    p.add_argument("--host", default=None)
    p.add_argument("--port", type=int, default=None)
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--speed", type=float, default=None)
    p.add_argument("--admin", action="store_true", default=None, help="enable the fault-injection API (/sim/*)")
    p.add_argument("--redirect-url", default="")
    p.add_argument("--replay", default="", help="CSV of candles to replay instead of the generated market")
    p.add_argument("--market-hours", action="store_true", help="honour market hours and holidays (AMOs wait)")
    p.add_argument("--holidays", default="", help="trading holidays instead of the exchange calendar's (NSE/BSE, "
                                                  "exchange-calendars): comma-separated ISO dates, a file of them, "
                                                  "or 'none' (weekends only)")
    p.add_argument("--settle", action="store_true", help="end-of-day settlement (T+1 holdings, expiry)")
    p.add_argument("--snapshot", default="", help="state file so a restarted sim carries on")
    p.add_argument("--faults", default="", help="JSON file of faults to start with (as POST /sim/faults)")
    p.add_argument("--edis", default="", metavar="USERS", help="accounts without DDPI (comma-separated user ids): "
                   "delivery sells need the day's eDIS/TPIN authorisation (HTTP 428 until given)")
    p.add_argument("--tls-cert", default="", metavar="PEM", help="serve https (and wss) with this certificate "
                   "chain, as the real Kite does (with --tls-key)")
    p.add_argument("--tls-key", default="", metavar="PEM", help="the private key of --tls-cert")
    p.add_argument("--date", default="", metavar="YYYY-MM-DD", help="the first trading day (its 09:15 open; the trading "
                   "day before it if it is none); default today in IST — a test that needs an expiry day pins one")
    p.add_argument("--token-expiry-hour", type=int, default=6, choices=range(24), metavar="H",
                   help="the hour (IST, wall clock) at which access tokens die, Kite's 6 by default; a test run "
                        "sets one far from now so that no session of it straddles the cutoff")


def options_from(a: argparse.Namespace) -> Options:
    return Options(replay=a.replay, market_hours=a.market_hours, holidays=parse_holidays(a.holidays),
                   settle=a.settle, snapshot=a.snapshot, faults=getattr(a, "faults", ""),
                   edis=frozenset(u.strip().upper() for u in getattr(a, "edis", "").split(",") if u.strip()),
                   tls_cert=getattr(a, "tls_cert", ""), tls_key=getattr(a, "tls_key", ""),
                   start_date=date.fromisoformat(a.date) if getattr(a, "date", "") else None,
                   token_expiry_hour=getattr(a, "token_expiry_hour", 6))
