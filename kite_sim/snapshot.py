"""The sim's state on disk (``--snapshot PATH``), so a restarted sim — and ``kta up`` around it — carries
on where it stopped: the market clock, balances, orders, trades, positions, holdings, GTTs and the live
sessions. Access tokens are stored only as sha256 digests. Written atomically (temp file + rename)."""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from pathlib import Path

from kite_sim import gtt
from kite_sim.accounts import AccessToken
from kite_sim.depository import Depository
from kite_sim.orders import Account, Holding, Order, PositionBook, Trade

log = logging.getLogger("kite_sim.snapshot")

VERSION = 1
ORDER_FIELDS = [f.name for f in dataclasses.fields(Order) if f.name not in ("inst",)]


def state(sim) -> dict:
    broker = sim.broker
    accounts = {}
    for uid, acc in broker.accounts.items():
        accounts[uid] = {
            "opening_balance": acc.opening_balance,
            "orders": [{**{k: getattr(o, k) for k in ORDER_FIELDS}, "token": o.inst.instrument_token}
                       for o in acc.orders.values()],
            "trades": [[t.trade_id, t.order.order_id, t.quantity, t.price, t.timestamp] for t in acc.trades],
            "positions": [[token, product, dataclasses.asdict(pb)] for (token, product), pb in acc.positions.items()],
            "holdings": [[token, dataclasses.asdict(h)] for token, h in acc.holdings.items()],
            "gtts": [t.state() for t in acc.gtts.values()],
            "depository": acc.depository.state(),
        }
    return {"version": VERSION, "day": broker._day.isoformat(), "order_seq": broker.next_order_seq,
            "trade_seq": broker.next_trade_seq, "gtt_seq": broker.gtt.next_id, "accounts": accounts,
            "sessions": {digest: dataclasses.asdict(info) for digest, info in sim.accounts.sessions().items()}}


def dumps(sim) -> str:
    return json.dumps(state(sim), sort_keys=True)


def write(path: Path, text: str, clock=None) -> None:
    doc = json.loads(text)
    if clock is not None:
        doc["clock"] = {"start_date": clock.start_date.isoformat(), "elapsed": clock.elapsed()}
    tmp = path.with_suffix(path.suffix + ".tmp")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_text(json.dumps(doc))
    os.replace(tmp, path)


def read(path: str | Path | None) -> dict | None:
    if not path or not Path(path).exists():
        return None
    try:
        doc = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        log.error("snapshot %s unreadable (%s); starting fresh", path, e)
        return None
    if doc.get("version") != VERSION:
        log.error("snapshot %s has version %r, expected %d; starting fresh", path, doc.get("version"), VERSION)
        return None
    return doc


def restore(sim, doc: dict) -> None:
    from datetime import date

    broker, universe = sim.broker, sim.market.universe
    broker._day = date.fromisoformat(doc["day"])
    broker.set_sequences(doc["order_seq"], doc["trade_seq"])
    for uid, a in doc["accounts"].items():
        acc = broker.accounts[uid] = Account(uid, a["opening_balance"])
        for row in a["orders"]:
            inst = universe.by_token.get(row.pop("token"))
            if inst is None:
                continue
            o = Order(inst=inst, **{k: row[k] for k in ORDER_FIELDS if k in row})
            acc.orders[o.order_id] = o
        for trade_id, order_id, qty, price, ts in a["trades"]:
            if order_id in acc.orders:
                acc.trades.append(Trade(trade_id, acc.orders[order_id], qty, price, ts))
        acc.positions = {(token, product): PositionBook(**pb) for token, product, pb in a["positions"]
                         if token in universe.by_token}
        acc.holdings = {token: Holding(**h) for token, h in a["holdings"] if token in universe.by_token}
        acc.gtts = {g["trigger_id"]: gtt.from_state(g, universe.by_token[g["token"]]) for g in a.get("gtts", [])
                    if g["token"] in universe.by_token}
        if "depository" in a:
            acc.depository = Depository.from_state(a["depository"])
    broker.gtt.next_id = doc.get("gtt_seq", 1)
    sim.accounts.restore_sessions({d: AccessToken(**info) for d, info in doc["sessions"].items()})
    log.info("restored %d accounts and %d sessions from the snapshot", len(doc["accounts"]), len(doc["sessions"]))
