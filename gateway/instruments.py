"""The broker's instrument list, cached in the gateway for symbol search and symbol → token lookups.

Refreshed at most every ``MAX_AGE`` seconds (Kite publishes it once a day); searching is a scan of
pre-lowered keys ranked exact > prefix > substring, indices and equities before derivatives."""

from __future__ import annotations

import time

from shared.kite.models import Instrument

MAX_AGE = 6 * 3600
_KIND_RANK = {"INDICES": 0, "EQ": 1, "FUT": 2, "CE": 3, "PE": 3}


def kind_of(i: Instrument) -> str:
    if i.segment == "INDICES":
        return "index"
    return {"EQ": "equity", "FUT": "future", "CE": "option", "PE": "option"}.get(i.instrument_type, i.instrument_type)


class InstrumentCache:
    def __init__(self) -> None:
        self.rows: list[Instrument] = []
        self.by_token: dict[int, Instrument] = {}
        self.by_key: dict[str, Instrument] = {}
        self._keys: list[tuple[str, str, Instrument]] = []
        self.loaded_at = 0.0

    def stale(self) -> bool:
        return not self.rows or time.monotonic() - self.loaded_at > MAX_AGE

    def load(self, rows: list[Instrument]) -> None:
        self.rows = rows
        self.by_token = {i.instrument_token: i for i in rows}
        self.by_key = {f"{i.exchange}:{i.tradingsymbol}".upper(): i for i in rows}
        self._keys = [(i.tradingsymbol.lower(), i.name.lower(), i) for i in rows]
        self.loaded_at = time.monotonic()

    def find(self, symbol: str) -> Instrument | None:
        """``EXCHANGE:TRADINGSYMBOL``, a bare tradingsymbol (NSE/index first) or a token."""
        s = symbol.strip()
        if s.isdigit():
            return self.by_token.get(int(s))
        if ":" in s:
            return self.by_key.get(s.upper())
        for exchange in ("NSE", "BSE", "NFO", "BFO", "MCX", "CDS", "BCD"):
            inst = self.by_key.get(f"{exchange}:{s.upper()}")
            if inst is not None:
                return inst
        return None

    def search(self, q: str, limit: int = 20) -> list[Instrument]:
        q = q.strip().lower()
        if not q:
            return []
        if ":" in q:
            q = q.split(":", 1)[1]
        hits: list[tuple[int, int, str, Instrument]] = []
        for symbol, name, inst in self._keys:
            if symbol == q or name == q:
                score = 0
            elif symbol.startswith(q) or name.startswith(q):
                score = 1
            elif q in symbol or q in name:
                score = 2
            else:
                continue
            rank = 0 if inst.segment == "INDICES" else _KIND_RANK.get(inst.instrument_type, 4)
            if rank >= 2 and symbol != q:
                score += 1  # a derivative matched by its underlying's name ranks below the underlying itself
            hits.append((score, rank, symbol, inst))
        hits.sort(key=lambda h: (h[0], h[1], len(h[2]), h[2]))
        return [h[3] for h in hits[:limit]]

    @staticmethod
    def describe(i: Instrument) -> dict:
        return {"instrument_token": i.instrument_token, "tradingsymbol": i.tradingsymbol, "name": i.name,
                "exchange": i.exchange, "segment": i.segment, "instrument_type": i.instrument_type,
                "kind": kind_of(i), "expiry": i.expiry.isoformat() if i.expiry else "", "strike": i.strike,
                "lot_size": i.lot_size, "key": f"{i.exchange}:{i.tradingsymbol}"}
