"""Positions the broker changed without a kta order: Kite's MIS auto square-off, expiry settlement, a
trade placed in Kite by hand. The positions pass compares kta's book (from journaled fills) with the
broker's net positions; a difference becomes an external fill, attributed to the strategies whose
position it closes (strategies first, largest first) and, for what it adds, to no strategy ("": the
account's own).
Pure: the execution worker journals and announces what these functions decide."""

from __future__ import annotations

from collections.abc import Iterable

from msgspec import Struct

from shared.messages import Position

Key = tuple[str, str, str]  # (exchange, tradingsymbol, product)


class Difference(Struct, frozen=True, kw_only=True):
    exchange: str
    tradingsymbol: str
    product: str
    kta: int  # net quantity in kta's book
    broker: int  # net quantity at the broker

    @property
    def delta(self) -> int:
        """The fill that makes kta's book the broker's (signed: + bought, - sold)."""
        return self.broker - self.kta


def net(positions: Iterable[Position]) -> dict[Key, int]:
    out: dict[Key, int] = {}
    for p in positions:
        key = (p.exchange, p.tradingsymbol, p.product or "MIS")
        out[key] = out.get(key, 0) + p.quantity
    return out


def differences(kta: Iterable[Position], broker: Iterable[Position],
                holdings: dict[tuple[str, str], int] | None = None, unheard: dict[Key, int] | None = None
                ) -> list[Difference]:
    """Where the broker's net position differs from kta's, by instrument and product. A CNC position
    kta holds that the broker no longer lists has gone to holdings (delivery), not away. With the
    account's ``holdings`` ((exchange, symbol) -> quantity incl. T1), a CNC position is compared with
    the day's CNC position plus the holdings (a carried position sold today shows as a negative day
    position against its holding), and only a shortfall counts: shares beyond kta's are the trader's own —
    except, up to ``unheard[key]``, the bought quantity of kta's own orders that may have filled unheard."""
    mine, theirs = net(kta), net(broker)
    out = []
    for key in sorted(mine.keys() | theirs.keys()):
        have, there = mine.get(key, 0), theirs.get(key, 0)
        if key[2] == "CNC" and holdings is not None:
            there += holdings.get((key[0], key[1]), 0)
            if there >= have:
                there = min(there, have + max(0, (unheard or {}).get(key, 0)))
                if there == have:
                    continue
        elif have == there or (key[2] == "CNC" and key not in theirs and have > 0):
            continue
        out.append(Difference(exchange=key[0], tradingsymbol=key[1], product=key[2], kta=have, broker=there))
    return out


def allocate(delta: int, holders: dict[str, int]) -> list[tuple[str, int]]:
    """Split a signed external fill among the strategies holding the instrument: what closes
    positions goes to the holders on the other side — strategies first, largest first (each at most
    its position: a strategy must never believe it holds what is gone), then the account's own ("");
    the rest belongs to no strategy ("")."""
    out: list[tuple[str, int]] = []
    left = delta
    for strategy_id, held in sorted(holders.items(), key=lambda kv: (kv[0] == "", -abs(kv[1]), kv[0])):
        if not left or held * left >= 0:
            continue
        take = min(abs(left), abs(held))
        share = take if left > 0 else -take
        out.append((strategy_id, share))
        left -= share
    if left:
        out.append(("", left))
    return out
