"""The positions table's protection column: the execution worker's ``ProtectionStatus`` rows (one per
strategy and instrument) put beside the broker's position rows (one per instrument and product).

A broker position kta tracks for less than it holds (the trader's own shares, an external fill not
adopted yet) has the rest unprotected: said on the row. A position kta tracks that the broker's day
positions no longer list (a CNC position carried into holdings) gets a row of its own, so its GTT is
never out of sight. A CNC row below what kta tracks is shares sold out of the holdings (a carried lot's
stop, the trader's own sale): Kite refuses a delivery short, so there is nothing there to protect."""

from __future__ import annotations

from typing import Any

ALARM = ("unprotected", "partial")


def _key(row: dict) -> tuple[str, str, str]:
    return row.get("exchange", ""), row.get("tradingsymbol", ""), row.get("product", "")


def protection_rows(snap: dict) -> dict[str, Any]:
    """``by_position``: (exchange, symbol, product) → its statuses and what they leave uncovered;
    ``carried``: statuses with no open broker row; ``alarms``: positions without full working protection;
    ``authorise``: (symbol, quantity, link) of delivery positions whose GTT stop needs today's eDIS first;
    ``marks``: the carried positions' prices and P&L by ``mark_key``."""
    statuses = snap.get("protection") or []
    open_rows = {_key(p): p for p in snap.get("positions") or [] if p.get("quantity")}
    by_position: dict[tuple[str, str, str], dict] = {}
    carried = []
    for s in statuses:
        if _key(s) in open_rows:
            by_position.setdefault(_key(s), {"statuses": [], "untracked": 0})["statuses"].append(s)
        else:
            carried.append(s)
    alarms = [f"{s['tradingsymbol']} ({s['strategy_id']}): {s['note'] or s['state']}"
              for s in statuses if s.get("state") in ALARM]
    for key, p in open_rows.items():
        entry = by_position.setdefault(key, {"statuses": [], "untracked": 0})
        tracked = sum(s["quantity"] for s in entry["statuses"])
        untracked = p["quantity"] - tracked
        if p.get("product") == "CNC" and untracked < 0:
            continue  # shares sold from holdings today (Kite's day row goes negative): India has no delivery short
        if untracked and (untracked > 0) == (p["quantity"] > 0):  # the broker holds more than kta's strategies
            entry["untracked"] = abs(untracked)
            alarms.append(f"{p['tradingsymbol']}: {abs(untracked)} of {abs(p['quantity'])} not tracked by kta, "
                          f"no stop-loss")
    authorise = [(s["tradingsymbol"], s["quantity"], s["authorise"]) for s in statuses if s.get("authorise")]
    marks = {mark_key(p): p for p in snap.get("carried") or []}
    return {"by_position": by_position, "carried": carried, "alarms": alarms, "authorise": authorise, "marks": marks}


def mark_key(row: dict) -> str:
    """A carried row's key: its strategy's position in the instrument."""
    return f"{row.get('strategy_id', '')}|{row.get('exchange', '')}:{row.get('tradingsymbol', '')}"
