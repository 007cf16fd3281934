"""The trading invariants, judged from what the broker shows (kite_sim's order book and positions)
and what kta wrote (its journal), sample after sample. Each broken invariant is recorded with the
time and the numbers, so a failing run says exactly what went wrong and when."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection
from dataclasses import dataclass, field

from shared.kite.models import Order as KiteOrder

WORKING = {"OPEN", "TRIGGER PENDING", "OPEN PENDING", "MODIFY PENDING", "VALIDATION PENDING",
           "PUT ORDER REQ RECEIVED", "MODIFY VALIDATION PENDING"}
EXITS = {"exit", "stop_loss", "target", "flatten", "rollback"}  # orders that may only reduce a position
FINAL = {"COMPLETE", "CANCELLED", "REJECTED", "FAILED"}
ADOPTED = ("external:", "expiry:")  # fills kta journaled with no order of its own at the broker
EXIT_WINDOW = 10.0  # seconds an exit may take between taking its stop off and its own order ending
# why kta takes a stop off to close its position itself: an exit signal, its own MIS square-off at the cutoff
CLEARED_BY = ("exit signal", "intraday (MIS) square-off")


def signed(trade: dict) -> int:
    return trade["quantity"] if trade["transaction_type"] == "BUY" else -trade["quantity"]


def journal_positions(trades: list[dict]) -> dict[tuple[str, str], int]:
    """(strategy_id, tradingsymbol) -> net quantity from the journaled fills."""
    out: dict[tuple[str, str], int] = {}
    for t in trades:
        key = (t["strategy_id"], t["tradingsymbol"])
        out[key] = out.get(key, 0) + signed(t)
    return out


def account_net(trades: list[dict]) -> dict[tuple[str, str], int]:
    """(tradingsymbol, product) -> the account's net quantity from the journaled fills."""
    out: dict[tuple[str, str], int] = {}
    for t in trades:
        key = (t["tradingsymbol"], t["product"] or "MIS")
        out[key] = out.get(key, 0) + signed(t)
    return {k: v for k, v in out.items() if v}


def broker_positions(broker_orders: list[KiteOrder], orders: list[dict], trades: list[dict],
                     today: str = "") -> dict[tuple[str, str], int]:
    """(strategy_id, tradingsymbol) -> what the broker has filled of that strategy's orders today (signed),
    plus what it carried in from earlier days (the journal's fills of those days: the broker's order book
    starts empty each day, its positions keep the NRML quantity overnight) and today's fills kta adopted
    (external, expiry: no order at the broker). Read from the same broker book as the stops, so a stop that
    just filled and its position are judged together (the journal lags the broker by the order update's trip:
    that lag is judged on its own, ``_fills_prompt``). ``today``: the broker's trading day ("" = one day only)."""
    out = _by_strategy(broker_orders, orders, lambda o: o.filled_quantity if o.transaction_type == "BUY"
                       else -o.filled_quantity)
    for t in trades:
        carried = bool(today) and t["day"] < today
        if carried or t["order_id"].startswith(ADOPTED):
            key = (t["strategy_id"], t["tradingsymbol"])
            out[key] = out.get(key, 0) + signed(t)
    return out


def broker_traded(broker_orders: list[KiteOrder], orders: list[dict]) -> dict[tuple[str, str], int]:
    """(strategy_id, tradingsymbol) -> the quantity the broker has filled of that strategy's orders, both sides."""
    return _by_strategy(broker_orders, orders, lambda o: o.filled_quantity)


def _by_strategy(broker_orders: list[KiteOrder], orders: list[dict],
                 amount: Callable[[KiteOrder], int]) -> dict[tuple[str, str], int]:
    """``amount`` of each filled broker order summed per (strategy_id, tradingsymbol), the strategy read
    from kta's journaled order under the same tag (orders without kta's tag belong to no strategy)."""
    by_tag = {r["tag"]: r for r in orders}
    out: dict[tuple[str, str], int] = {}
    for o in broker_orders:
        row = by_tag.get(o.tag or "")
        if row is not None and o.filled_quantity:
            key = (row["strategy_id"], o.tradingsymbol)
            out[key] = out.get(key, 0) + amount(o)
    return out


def stop_cover(broker_orders: list[KiteOrder], orders: list[dict]) -> dict[tuple[str, str], int]:
    """(strategy_id, tradingsymbol) -> what its working stops at the broker would trade (signed)."""
    by_tag = {r["tag"]: r for r in orders}
    cover: dict[tuple[str, str], int] = {}
    for o in broker_orders:
        row = by_tag.get(o.tag or "")
        if row is not None and row["kind"] == "stop_loss" and o.status in WORKING:
            key = (row["strategy_id"], o.tradingsymbol)
            sign = -1 if o.transaction_type == "SELL" else 1  # a stop sells a long, buys back a short
            cover[key] = cover.get(key, 0) + sign * (o.quantity - o.filled_quantity)
    return cover


def uncovered(broker_orders: list[KiteOrder], orders: list[dict], trades: list[dict],
              options: Collection[str] = ()) -> dict:
    """Positions whose stops at the broker do not cover exactly what is held: key -> (held, covered).
    ``options``: option symbols, protected by their wings instead (``naked_shorts``)."""
    cover = stop_cover(broker_orders, orders)
    return {k: (q, -cover.get(k, 0)) for k, q in journal_positions(trades).items()
            if q and k[1] not in options and cover.get(k, 0) != -q}


def naked_shorts(positions: dict[tuple[str, str], int], option_types: dict[str, str]) -> dict[tuple[str, str], int]:
    """(strategy_id, CE|PE) -> its net quantity of that option type where it is short (more sold than
    bought): the short options no long option of the strategy covers (one nearest expiry traded)."""
    net: dict[tuple[str, str], int] = {}
    for (strategy_id, symbol), q in positions.items():
        if kind := option_types.get(symbol):
            net[(strategy_id, kind)] = net.get((strategy_id, kind), 0) + q
    return {k: q for k, q in net.items() if q < 0}


@dataclass
class Invariants:
    limit: int  # max_position_qty: no broker position may exceed it
    grace: float  # seconds a position may stand unchanged before its stop must be at the broker
    fill_grace: float = 10.0  # seconds a broker fill of kta's may wait for the journal
    lots: dict[str, int] = field(default_factory=dict)  # option symbol -> lot size (their limit is in lots)
    option_types: dict[str, str] = field(default_factory=dict)  # option symbol -> CE | PE
    limit_lots: int = 10  # max_position_lots
    violations: list[str] = field(default_factory=list)
    samples: int = 0
    checked_protection: int = 0
    _stable: dict[tuple[str, str], tuple[tuple[int, int], float]] = field(default_factory=dict)  # (held, traded), since
    _seen: set[str] = field(default_factory=set)
    _owing: dict[str, float] = field(default_factory=dict)  # order id -> since when a broker fill is unjournaled
    _first_seen: dict[str, float] = field(default_factory=dict)  # tag -> when this checker first saw it (exits)
    _naked_since: dict[tuple[str, str], float] = field(default_factory=dict)  # (strategy, CE|PE) -> since
    checked_hedges: int = 0

    def fail(self, t: float, what: str) -> None:
        if what not in self._seen:  # one line per distinct breach
            self._seen.add(what)
            self.violations.append(f"t={t:.1f}s {what}")
            print(f"VIOLATION t={t:.1f}s {what}", flush=True)  # seen as it happens with -s, even if the run dies

    def sample(self, t: float, broker_net: dict[tuple[str, str], int], broker_orders: list[KiteOrder],
               orders: list[dict], trades: list[dict], protected_since: float, today: str = "") -> None:
        """One look at the whole system at ``t`` (seconds into the run). ``protected_since``: from
        when the execution worker has been up (a position is judged from then, not during a restart).
        ``today``: the broker's trading day of these reads (its order book is that day's only)."""
        self.samples += 1
        for (symbol, product), q in broker_net.items():
            lot = self.lots.get(symbol)
            if lot and abs(q) > self.limit_lots * lot:
                self.fail(t, f"position above its limit: {symbol} {product} {q} ({abs(q) // lot} lots, limit "
                             f"{self.limit_lots})")
            elif not lot and abs(q) > self.limit:
                self.fail(t, f"position above its limit: {symbol} {product} {q} (limit {self.limit})")
        tags = Counter(o.tag for o in broker_orders if o.tag and o.tag.startswith("K"))
        for tag, n in tags.items():
            if n > 1:
                self.fail(t, f"order placed twice: tag {tag} x{n}")
        self._exits_never_grow(t, orders, trades)
        self._protected(t, broker_orders, orders, trades, protected_since, today)
        self._fills_prompt(t, broker_orders, orders, trades, protected_since)

    def _exits_never_grow(self, t: float, orders: list[dict], trades: list[dict]) -> None:
        kinds = {r["order_id"]: r["kind"] for r in orders if r["order_id"]}
        held: dict[tuple[str, str], int] = {}
        for tr in trades:  # in the order they were journaled
            key = (tr["strategy_id"], tr["tradingsymbol"])
            before = held.get(key, 0)
            after = before + signed(tr)
            if kinds.get(tr["order_id"]) in EXITS and (abs(after) > abs(before) or after * before < 0):
                self.fail(t, f"an exit grew a position: {kinds[tr['order_id']]} {tr['order_id']} of {key}: "
                             f"{before} -> {after}")
            held[key] = after

    def _protected(self, t: float, broker_orders: list[KiteOrder], orders: list[dict], trades: list[dict],
                   protected_since: float, today: str = "") -> None:
        cover = stop_cover(broker_orders, orders)
        positions = broker_positions(broker_orders, orders, trades, today)
        traded = broker_traded(broker_orders, orders)
        exiting = self._closing(t, orders)
        for key in set(self._stable) - {k for k, q in positions.items() if q}:
            del self._stable[key]
        self._hedged(t, positions, protected_since)
        for key, q in positions.items():
            if not q or key[1] in self.option_types:  # an option structure is protected by its wings
                continue
            was = self._stable.get(key)
            # stable: the same position by the same fills (-5, closed by its stop, and -5 again between two
            # samples is a new position whose stop may be a moment away, not one held since the first)
            if was is None or was[0] != (q, traded.get(key, 0)):
                self._stable[key] = ((q, traded.get(key, 0)), t)
                continue
            if t - max(was[1], protected_since) < self.grace or key in exiting:
                continue
            self.checked_protection += 1
            if cover.get(key, 0) != -q:
                self.fail(t, f"unprotected: {key} holds {q} since t={was[1]:.1f}s, stops at the broker cover "
                             f"{-cover.get(key, 0)}")

    def _hedged(self, t: float, positions: dict[tuple[str, str], int], protected_since: float) -> None:
        """No strategy is short more calls (puts) than it holds long for longer than ``grace``: an iron
        condor's legs go in wings first and come out shorts first, so its shorts are never naked."""
        net = naked_shorts(positions, self.option_types)
        for key in set(self._naked_since) - set(net):
            del self._naked_since[key]
        for key, q in net.items():
            since = self._naked_since.setdefault(key, t)
            if t - max(since, protected_since) >= self.grace:
                self.fail(t, f"naked short options: {key} short {-q} more than it holds long since t={since:.1f}s")
        self.checked_hedges += 1

    def _fills_prompt(self, t: float, broker_orders: list[KiteOrder], orders: list[dict], trades: list[dict],
                      up_since: float) -> None:
        """Every fill the broker shows of a kta order is in the journal within ``fill_grace`` seconds
        of the worker being up to hear it (the order update's trip, a trade-book read): later means
        the update path lost it and only a reconciliation found it."""
        mine = {r["tag"] for r in orders}
        journaled: dict[str, int] = {}
        for tr in trades:
            journaled[tr["order_id"]] = journaled.get(tr["order_id"], 0) + tr["quantity"]
        owing = {o.order_id: o.filled_quantity for o in broker_orders
                 if o.tag in mine and o.filled_quantity > journaled.get(o.order_id, 0)}
        for order_id in set(self._owing) - set(owing):
            del self._owing[order_id]
        for order_id, filled in owing.items():
            since = self._owing.setdefault(order_id, t)
            if t - max(since, up_since) > self.fill_grace:
                self.fail(t, f"fill journaled late: order {order_id} filled {filled} at the broker since "
                             f"t={since:.1f}s, the journal has {journaled.get(order_id, 0)}")

    def _closing(self, t: float, orders: list[dict]) -> set[tuple[str, str]]:
        """Positions kta is closing right now: an exit or flatten still working or first seen less than
        ``EXIT_WINDOW`` ago (a rejected exit's position gets its stop back), or their latest stop taken
        off by kta for an exit or its MIS square-off that recently (each first clears the stop, then sends its
        own order).
        "Recently" is from when this checker first saw it: a row's updated_ts moves with every
        reconciliation pass that reads the order again."""
        out: set[tuple[str, str]] = set()
        latest_stop: dict[tuple[str, str], dict] = {}
        for r in orders:  # oldest first
            key = (r["strategy_id"], r["tradingsymbol"])
            if r["kind"] in ("exit", "flatten"):
                first = self._first_seen.setdefault(r["tag"], t)
                if r["state"] not in FINAL or t - first < EXIT_WINDOW:
                    out.add(key)
            if r["kind"] == "stop_loss":
                latest_stop[key] = r
        for key, r in latest_stop.items():
            if (r["cancel_reason"] or "").startswith(CLEARED_BY) \
                    and t - self._first_seen.setdefault(f"{r['tag']}:cancelled", t) < EXIT_WINDOW:
                out.add(key)
        return out

    def fills_journaled(self, t: float, broker_trades: list, orders: list[dict], trades: list[dict]) -> None:
        mine = {r["order_id"] for r in orders if r["order_id"]}
        journaled = {(tr["order_id"], tr["trade_id"]) for tr in trades}
        for bt in broker_trades:
            if bt.order_id in mine and (bt.order_id, bt.trade_id) not in journaled:
                self.fail(t, f"fill not journaled: order {bt.order_id} trade {bt.trade_id} {bt.quantity}")
