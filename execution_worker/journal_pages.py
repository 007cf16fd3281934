"""The order book and the trade book one page at a time, straight from the journal, for the desk's
pages and ``/api/orders`` / ``/api/trades``: newest first, filtered in SQL, keyset-paginated.

A page is ``{"items": [...], "next": cursor | None}``; ``next`` (opaque: the last row's sort key,
url-safe base64 JSON) asks for the rows strictly older than it, so orders arriving at the top during
the day never shift or repeat a row on the older pages. Orders sort on (created_ts, rowid) — the second
is kta's clock's resolution, and orders journaled within one (an entry, its exit, its stop) list newest
first by when they were journaled (the tag is random) — fills on (fill_timestamp, rowid)."""

from __future__ import annotations

import base64
import json
from typing import Any

from execution_worker.journal import Journal
from execution_worker.journal_reads import TERMINAL_STATES
from shared import messages as m


class CursorError(ValueError):
    """A ``before`` value this journal did not hand out."""


def encode_cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (ValueError, UnicodeDecodeError):
        raise CursorError("before: not a cursor from a previous page") from None
    if not isinstance(key, list) or len(key) != size:
        raise CursorError("before: not a cursor from a previous page")
    return key


def _day_clause(journal: Journal, day: str) -> tuple[str, list[Any]]:
    if day == "all":
        return "", []
    return " AND day = ?", [day or journal.today()]


def _status_clause(status: str) -> tuple[str, list[Any]]:
    if not status:
        return "", []
    marks = ",".join("?" * len(TERMINAL_STATES))
    if status.lower() == "open":
        return f" AND state NOT IN ({marks}) AND status NOT IN ({marks})", [*TERMINAL_STATES, *TERMINAL_STATES]
    value = status.upper()
    return " AND (status = ? OR state = ?)", [value, value]


def orders_page(journal: Journal, user_id: str, *, limit: int, before: str = "", status: str = "",
                strategy_id: str = "", symbol: str = "", day: str = "") -> dict:
    where, args = "user_id = ?", [user_id]
    for clause, more in (_day_clause(journal, day), _status_clause(status)):
        where += clause
        args += more
    if strategy_id:
        where, args = where + " AND strategy_id = ?", [*args, strategy_id]
    if symbol:
        where, args = where + " AND upper(tradingsymbol) = ?", [*args, symbol.strip().upper()]
    if before:
        created, seq = decode_cursor(before, 2)
        where, args = where + " AND (created_ts < ? OR (created_ts = ? AND rowid < ?))", [*args, created, created, seq]
    rows = list(journal.db["orders"].rows_where(where, args, select="*, rowid AS _seq",
                                                 order_by="created_ts DESC, rowid DESC", limit=limit + 1))
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    cursor = encode_cursor([last["created_ts"], last["_seq"]]) if more and last else None
    for row in rows:
        del row["_seq"]
    return {"items": rows, "next": cursor}


def trades_page(journal: Journal, user_id: str, *, limit: int, before: str = "", strategy_id: str = "",
                symbol: str = "", side: str = "", day: str = "") -> dict:
    where, args = "user_id = ?", [user_id]
    clause, more_args = _day_clause(journal, day)
    where, args = where + clause, args + more_args
    if strategy_id:
        where, args = where + " AND strategy_id = ?", [*args, strategy_id]
    if symbol:
        where, args = where + " AND upper(tradingsymbol) = ?", [*args, symbol.strip().upper()]
    if side:
        where, args = where + " AND transaction_type = ?", [*args, side]
    if before:
        stamp, rowid = decode_cursor(before, 2)
        where, args = where + " AND (fill_timestamp < ? OR (fill_timestamp = ? AND rowid < ?))", [*args, stamp, stamp, rowid]
    sql = (f"SELECT rowid AS _row, * FROM trades WHERE {where} "
           "ORDER BY fill_timestamp DESC, rowid DESC LIMIT ?")
    cursor = journal.db.execute(sql, [*args, limit + 1])
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r)) for r in cursor.fetchall()]
    more = len(rows) > limit
    rows = rows[:limit]
    last = rows[-1] if rows else None
    nxt = encode_cursor([last["fill_timestamp"], last["_row"]]) if more and last else None
    # ``today``: the day the worker trades on now (the exchange's clock): the desk reports on it, not the machine's
    return {"items": [{k: v for k, v in r.items() if k != "_row"} for r in rows], "next": nxt, "today": journal.today()}


def book_page(journal: Journal, user_id: str, cmd: m.GetOrders | m.GetTrades) -> m.Ok | m.Error:
    """The answer to GetOrders / GetTrades (GetOrders without a limit: the day's orders as a list)."""
    try:
        if isinstance(cmd, m.GetTrades):
            return m.Ok(data=trades_page(journal, user_id, limit=cmd.limit, before=cmd.before, side=cmd.side,
                                         strategy_id=cmd.strategy_id, symbol=cmd.symbol, day=cmd.day))
        if not cmd.limit:
            return m.Ok(data=journal.orders(user_id))
        return m.Ok(data=orders_page(journal, user_id, limit=cmd.limit, before=cmd.before, status=cmd.status,
                                     strategy_id=cmd.strategy_id, symbol=cmd.symbol, day=cmd.day))
    except CursorError as e:
        return m.Error(code="bad_request", message=str(e), field="before")


def carried_positions(journal: Journal, user_id: str, day: str) -> dict:
    """The net position per (strategy, instrument) of the user's fills before ``day`` (GetCarried), with the
    average price of the side still held (the buys of a long, the sells of a short) — a fallback mark: the
    desk marks carried positions at the previous close (Kite's day P&L, m2m) when the broker gives it."""
    rows = journal.db.execute(
        "SELECT strategy_id, exchange, tradingsymbol, "
        "SUM(CASE WHEN transaction_type = 'BUY' THEN quantity ELSE -quantity END) AS net, "
        "SUM(CASE WHEN transaction_type = 'BUY' THEN quantity * price ELSE 0 END) AS bought, "
        "SUM(CASE WHEN transaction_type = 'BUY' THEN quantity ELSE 0 END) AS buys, "
        "SUM(CASE WHEN transaction_type = 'SELL' THEN quantity * price ELSE 0 END) AS sold, "
        "SUM(CASE WHEN transaction_type = 'SELL' THEN quantity ELSE 0 END) AS sells "
        "FROM trades WHERE user_id = ? AND day < ? GROUP BY strategy_id, exchange, tradingsymbol HAVING net != 0",
        [user_id, day]).fetchall()
    return {"day": day, "positions": [
        {"strategy_id": strategy or "", "exchange": exchange, "tradingsymbol": symbol, "quantity": net,
         "average_price": round(bought / buys) if net > 0 and buys else round(sold / sells) if sells else 0}
        for strategy, exchange, symbol, net, bought, buys, sold, sells in rows]}
