"""The order book of one user: every kta order by tag and by broker order id, in memory. The journal
persists it (append-only events, one row per order); the book answers the execution path's
questions without a SQL read."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from shared.trading.order import Order, OrderState


class OrderBook:
    def __init__(self, orders: Iterable[Order] = ()) -> None:
        self._by_tag: dict[str, Order] = {}
        self._by_id: dict[str, Order] = {}
        self._reserved: dict[str, list[Order]] = {}  # decided orders not created yet, by what decided them
        # The hot path's questions (working, unfinished, owing) look only at orders not settled yet: a day's settled
        # orders (final, every fill journaled, never sent again) made each signal's risk and exit O(day's orders)
        # — 0.5 ms a question at 1,500 orders (issue #18). Settled ones leave ``_open`` when a question meets them;
        # an order that changes again is put back by ``touch`` (``Desk.record``, where orders change).
        self._open: dict[str, Order] = {}
        self._shuffled = False  # ``touch`` put one back at the end: restore the book's order before answering
        self._rank: dict[str, int] = {}  # tag -> its place in the book
        self._by_signal: dict[str, dict[str, Order]] = {}
        for order in orders:
            self.add(order)

    def add(self, order: Order) -> Order:
        old = self._by_tag.get(order.tag)
        if old is None:
            self._rank.setdefault(order.tag, len(self._rank))
        elif old is not order:  # the same tag, a new object: it stands in for the old one everywhere
            self._by_signal.get(old.signal_id, {}).pop(order.tag, None)
            if order.tag in self._open:
                self._open[order.tag] = order
        self._by_tag[order.tag] = order
        self._by_signal.setdefault(order.signal_id, {})[order.tag] = order
        self.touch(order)
        if order.order_id:
            self._by_id[order.order_id] = order
        return order

    def touch(self, order: Order) -> None:
        """``order`` changed: the questions below consider it again until it is settled."""
        if order.tag not in self._open and self._by_tag.get(order.tag) is order:
            last = next(reversed(self._open), None)
            if last is not None and self._rank[last] > self._rank[order.tag]:
                self._shuffled = True
            self._open[order.tag] = order

    def _unsettled(self) -> list[Order]:
        """Every order not settled, in the book's order (the settled ones leave the index)."""
        settled = [t for t, o in self._open.items() if o.is_terminal and not o.unjournaled and not o.may_resubmit]
        for tag in settled:
            del self._open[tag]
        if self._shuffled:
            self._open = dict(sorted(self._open.items(), key=lambda kv: self._rank[kv[0]]))
            self._shuffled = False
        return list(self._open.values())

    def indexed(self, order: Order) -> None:
        """Call after an event gave ``order`` its broker id."""
        if order.order_id:
            self._by_id[order.order_id] = order

    def get(self, tag: str) -> Order | None:
        return self._by_tag.get(tag)

    def by_order_id(self, order_id: str) -> Order | None:
        return self._by_id.get(order_id) if order_id else None

    def find(self, order_id: str, tag: str | None) -> Order | None:
        """A broker order's kta twin: by its id, else by its tag."""
        return self.by_order_id(order_id) or (self._by_tag.get(tag) if tag else None)

    def __iter__(self) -> Iterator[Order]:
        return iter(self._by_tag.values())

    def __len__(self) -> int:
        return len(self._by_tag)

    def working(self) -> list[Order]:
        """Orders that are not final (may still fill)."""
        return [o for o in self._unsettled() if o.is_working]

    def unfinished(self) -> list[Order]:
        """Orders that may still fill: the working ones and those decided but not yet sent (risk counts
        both: a decided order is on its way while the user's next signal is judged) — reserved ones too."""
        out = [o for o in self._unsettled() if o.is_working or o.state is OrderState.INITIALIZED]
        return out + [o for orders in self._reserved.values() for o in orders if o.tag not in self._by_tag]

    def reserve(self, key: str, orders: list[Order]) -> None:
        """Orders decided under ``key`` that are created one after the other later (a group's legs, each
        placed once the one before it filled): counted as on their way until created or ``release``d."""
        self._reserved[key] = orders

    def release(self, key: str) -> None:
        self._reserved.pop(key, None)

    def of_signal(self, signal_id: str) -> list[Order]:
        return list(self._by_signal.get(signal_id, {}).values())

    def of_group(self, group_id: str) -> list[Order]:
        return sorted((o for o in self._by_tag.values() if o.group_id == group_id), key=lambda o: (o.leg, o.slice_no))

    def working_for(self, strategy_id: str, exchange: str, tradingsymbol: str, *kinds: str) -> list[Order]:
        """Working orders of one strategy's position (of the given kinds, or all)."""
        return [o for o in self._unsettled() if o.is_working and o.strategy_id == strategy_id
                and o.exchange == exchange and o.tradingsymbol == tradingsymbol and (not kinds or o.kind in kinds)]

    def owing(self, position: tuple[str, str, str] | None = None) -> list[Order]:
        """Orders whose fills the broker reports and the journal lacks yet: every one, or those of one
        (strategy_id, exchange, tradingsymbol) position."""
        return [o for o in self._unsettled() if o.unjournaled
                and (position is None or (o.strategy_id, o.exchange, o.tradingsymbol) == position)]

    def forget_final(self, keep: set[str]) -> int:
        """Drop final orders not in ``keep`` (a new day): the journal still has them."""
        gone = [t for t, o in self._by_tag.items() if o.is_terminal and t not in keep]
        for tag in gone:
            order = self._by_tag.pop(tag)
            self._by_id.pop(order.order_id, None)
            self._open.pop(tag, None)
            self._rank.pop(tag, None)
            mine = self._by_signal.get(order.signal_id, {})
            mine.pop(tag, None)
            if not mine:
                self._by_signal.pop(order.signal_id, None)
        return len(gone)
