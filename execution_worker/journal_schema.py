"""The journal's tables, declared once: columns, primary keys and indexes. Money columns are integer
paise; ``day`` is the IST trading day (yyyy-mm-dd) each row belongs to."""

from __future__ import annotations

from typing import Any

SCHEMA: dict[str, tuple[dict[str, type], str | tuple[str, ...]]] = {
    "signals": (
        {
            "id": str, "user_id": str, "day": str, "ts": str, "type": str, "strategy_id": str,
            "strategy": str, "instrument": str, "intent": str, "decision": str, "reason": str,
            "code": str, "payload": str, "quantities": str,
        },
        "id",
    ),
    "orders": (
        {
            "tag": str, "user_id": str, "day": str, "created_ts": str, "updated_ts": str,
            "order_id": str, "signal_id": str, "group_id": str, "kind": str, "leg_index": int, "strategy_id": str,
            "exchange": str, "tradingsymbol": str, "instrument_token": int, "transaction_type": str,
            "order_type": str, "product": str, "variety": str, "quantity": int, "price": int,
            "trigger_price": int, "market_protection": int, "state": str, "status": str,
            "status_message": str, "filled_quantity": int, "average_price": int,
            "order_timestamp": str, "exchange_timestamp": str, "slice_no": int, "validity": str,
            "fill_quantity": int, "trade_ids": str, "cancel_reason": str, "failure": str,
            "role": str,  # a protective order's role now (shared.trading.protection.role), "" for others
        },
        "tag",
    ),
    "order_events": (
        {
            "event_key": str, "user_id": str, "day": str, "ts": str, "order_id": str, "tag": str,
            "signal_id": str, "group_id": str, "kind": str, "state": str, "status": str,
            "status_message": str, "quantity": int, "filled_quantity": int, "pending_quantity": int,
            "cancelled_quantity": int, "average_price": int, "exchange_timestamp": str, "payload": str,
        },
        "event_key",
    ),
    "trades": (
        {
            "order_id": str, "trade_id": str, "user_id": str, "day": str, "fill_timestamp": str,
            "exchange": str, "tradingsymbol": str, "instrument_token": int, "transaction_type": str,
            "quantity": int, "price": int, "product": str, "strategy_id": str, "signal_id": str,
            "group_id": str,
        },
        ("order_id", "trade_id"),
    ),
    "groups": (
        {
            "group_id": str, "user_id": str, "day": str, "created_ts": str, "updated_ts": str,
            "strategy_id": str, "structure": str, "state": str, "detail": str,
        },
        "group_id",
    ),
    "risk_events": (
        {
            "id": int, "user_id": str, "day": str, "ts": str, "code": str, "message": str,
            "signal_id": str, "state": str,
        },
        "id",
    ),
    "outcomes": (
        {
            "id": int, "key": str, "user_id": str, "day": str, "ts": str, "strategy_id": str, "kind": str,
            "signal_id": str, "group_id": str, "order_kind": str, "exchange": str, "tradingsymbol": str,
            "instrument_token": int, "transaction_type": str, "quantity": int, "price": int, "position": int,
            "average_price": int, "code": str, "reason": str, "trade_id": str,
        },
        "id",
    ),
    "protections": (
        {
            "key": str, "user_id": str, "strategy_id": str, "exchange": str, "tradingsymbol": str,
            "instrument_token": int, "product": str, "stop": int, "target": int, "signal_id": str,
            "generation": int, "retried": int, "mode": str, "gtt_ids": str, "gtt_asked": str,
            "updated_ts": str,
        },
        "key",
    ),
    # the derivatives kta's orders traded, as the day's instrument list showed them: an expired contract leaves Kite's
    # list the next day, and its settlement still needs its expiry, underlying and strike
    "contracts": (
        {"key": str, "instrument": str},  # "EXCHANGE:TRADINGSYMBOL", the Instrument as JSON
        "key",
    ),
    "daily_summaries": (
        {"user_id": str, "day": str, "written_ts": str, "archived": int, "summary": str},
        ("user_id", "day"),
    ),
    "kill_switch": (
        {
            "user_id": str, "state": str, "reason": str, "tripped_at": int, "day": str,
            "baseline": int, "limits": str, "updated_ts": str,
        },
        "user_id",
    ),
}

INDEXES = {
    "signals": [["user_id", "day"]],
    "orders": [["order_id"], ["user_id", "day"], ["signal_id"], ["group_id"], ["user_id", "state"]],
    "order_events": [["order_id"], ["tag"], ["user_id", "day"]],
    "trades": [["user_id", "day"], ["signal_id"]],
    "groups": [["user_id", "day"]],
    "risk_events": [["user_id", "day"], ["signal_id"]],
    "outcomes": [["user_id", "key"]],
}


def defaults(columns: dict[str, type]) -> dict[str, Any]:
    return {c: (0 if t is int else "") for c, t in columns.items() if c not in ("id",)}
