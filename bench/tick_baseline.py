"""The tick → order bench's FAIR baseline: the original design done plainly in one process, on the same sim in
the same run as kta (official parser on the WebSocket frame, minute bars, EMA with pandas on bar close — not per
tick —, the signal journaled with sqlite-utils, the order placed with httpx, one signal after the other as its
``_process_signal`` does), the same 24 strategies and 8 accounts. Its internal time is measured as kta's (tick to
the order handed to httpx, minus the earlier orders' round trips it awaited), its end to end at the same sim stamp.
Run by bench/tick_to_order.py."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import defaultdict

import httpx

from bench.stack import Stack, login, machine_load
from bench.tick_scenario import ACCOUNTS, KEYS, PLAN, SYMBOLS, TOKENS, WARMUP_BARS, Result


async def run_baseline(stack: Stack, want: int, bar_s: float) -> Result:
    import pandas as pd
    import sqlite_utils
    import websockets
    from kiteconnect import KiteTicker

    parse = KiteTicker("key", "token")._parse_binary
    tokens = {uid: login(stack.sim_root, uid, "bench", KEYS[uid], KEYS[uid] + "-secret") for uid in ACCOUNTS}
    db = sqlite_utils.Database(sqlite3.connect(stack.tmp / "baseline-journal.db"))
    closes: dict[int, list[float]] = defaultdict(list)
    bars: dict[int, list] = {}  # token -> [minute, close]
    held: dict[int, bool] = defaultdict(bool)
    seq = 0
    first = ACCOUNTS[0]
    ws_url = f"{stack.sim_root.replace('http', 'ws', 1)}/ws?api_key={KEYS[first]}&access_token={tokens[first]}"
    bars_seen = 0
    async with httpx.AsyncClient(base_url=stack.sim_root, headers={"X-Kite-Version": "3"}) as http, \
            websockets.connect(ws_url, additional_headers={"X-Kite-Version": "3"}, max_size=2**22,
                               ping_interval=None, compression=None) as ws:
        await ws.send(json.dumps({"a": "subscribe", "v": TOKENS}))
        await ws.send(json.dumps({"a": "mode", "v": ["full", TOKENS]}))
        print(f"fair baseline (original design done plainly, one process): same {len(PLAN)} strategies and "
              f"accounts; {machine_load()}", flush=True)
        sent: list[tuple[str, int, int, int]] = []  # tag, tick received, handed to httpx, earlier round trips awaited
        async for frame in ws:
            if not isinstance(frame, bytes) or len(frame) < 4:
                continue
            received = time.time_ns()
            awaited = 0
            for tick in parse(frame):
                token = tick["instrument_token"]
                ts = tick.get("exchange_timestamp")
                minute = int(ts.timestamp()) // 60 if ts else int(time.time()) // 60
                bar = bars.get(token)
                if bar is None or bar[0] == minute:
                    bars[token] = [minute, tick["last_price"]]
                    continue
                closes[token].append(bar[1])  # the bar closed: its strategies decide on it
                bars[token] = [minute, tick["last_price"]]
                bars_seen += 1
                window = pd.Series(closes[token][-200:])
                fast = window.ewm(span=2, adjust=False).mean().iloc[-1]
                for n, (uid, t) in enumerate(PLAN):
                    if t != token:
                        continue
                    side = "SELL" if held[n] else "BUY"
                    held[n] = not held[n]
                    seq += 1
                    tag = f"base{seq}"
                    db["signals"].insert({"tag": tag, "user": uid, "token": token, "side": side, "ema": float(fast),
                                          "received_at": received, "created_at": time.time_ns()})
                    symbol = next(s for s, tk in SYMBOLS.items() if tk == token)
                    handed = time.time_ns()
                    await http.post("/orders/regular", headers={"Authorization": f"token {KEYS[uid]}:{tokens[uid]}"},
                                    data={"exchange": "NSE", "tradingsymbol": symbol, "transaction_type": side,
                                          "quantity": "1", "product": "MIS", "order_type": "MARKET", "tag": tag})
                    if bars_seen > WARMUP_BARS * len(TOKENS):
                        sent.append((tag, received, handed, awaited))
                    awaited += time.time_ns() - handed
            if len(sent) >= want:
                break
        stamps = (await http.get("/bench/stamps")).json()
    result = Result(f"fair baseline ({len(ACCOUNTS)} accounts, {len(ACCOUNTS)} api_keys)")
    for tag, rx, handed, awaited in sent:
        if tag in stamps:
            result.add((handed - rx - awaited) / 1e6, 0.0, awaited / 1e6, (stamps[tag] - rx) / 1e6)
    result.print()
    return result
