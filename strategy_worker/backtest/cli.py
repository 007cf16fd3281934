"""``kta backtest`` and ``kta candles``: backtests, sweeps and the candle store from the command line.

    kta backtest --strategy ema_crossover --symbols INFY,TCS --from 2025-01-01 --to 2025-12-31 \\
                 --interval 5minute --param fast=9 --param slow=21
    kta backtest ... --sweep fast=5,9,13 --sweep slow=21,50 [--optuna --trials 40] [--windows 4]
                 [--in-sample 0.7] [--objective sharpe] [--workers 2 | --ray HOST:PORT]
    kta candles refresh --symbols INFY --from 2025-01-01 --to 2025-12-31 --interval minute
    kta candles import candles.csv --interval minute

Candles come from the local store (``<data dir>/candles``); what is missing is fetched from Kite through
the user's broker session (``--user``, default DEMO01) when the stack is running. Runs are kept in
``<data dir>/backtests.db``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import uuid
from datetime import date
from typing import Any

import msgspec

from shared import validation
from shared.config import Settings
from shared.messages import BacktestSpec, SweepSpec

# the engine, pyarrow and the metrics library load only when a command runs, not for `kta --help`


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _engine():
    from strategy_worker.backtest import engine

    return engine


def params_of(pairs: list[str]) -> dict[str, Any]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _engine().BacktestError("param", f"--param takes name=value, not {pair!r}")
        out[key.strip()] = _value(value.strip())
    return out


def spec_of(a: argparse.Namespace) -> BacktestSpec:
    raw = {"strategy": a.strategy, "symbols": [s.strip().upper() for s in a.symbols.split(",") if s.strip()],
           "start": a.start, "end": a.end, "interval": a.interval, "params": params_of(a.param),
           "slippage_ticks": a.slippage_ticks, "warmup_bars": a.warmup_bars, "capital": int(round(a.capital * 100))}
    try:
        return msgspec.convert(raw, BacktestSpec)
    except msgspec.ValidationError as e:
        raise _engine().BacktestError(validation.path(e) or "spec", str(e)) from None


class Bar:
    """A one-line progress bar on stderr."""

    def __init__(self, what: str) -> None:
        self.what, self.last = what, 0.0

    def __call__(self, done: float, info: Any = "") -> None:
        now = time.monotonic()
        if done < 1 and now - self.last < 0.2:
            return
        self.last = now
        filled = int(done * 30)
        sys.stderr.write(f"\r{self.what} [{'#' * filled}{'.' * (30 - filled)}] {done * 100:5.1f}% {info}   ")
        if done >= 1:
            sys.stderr.write("\n")
        sys.stderr.flush()


async def fetch(settings: Settings, user: str, spec: BacktestSpec) -> str:
    """Fill the store's gaps for ``spec`` through the user's Kite session; says why not when it cannot."""
    from urllib.parse import urlparse

    from shared import healthcheck
    from shared.bus import Bus
    from shared.broker_sessions import client_for, get_session, vault_for
    from shared.natsauth import creds_for
    from strategy_worker.backtest import data

    nats = urlparse(settings.nats_url.split(",")[0])
    if not healthcheck.tcp_ok(nats.port or 4222, nats.hostname or "127.0.0.1", timeout=0.5):
        return "the stack is not running: using the candles already stored"  # the bus would wait for it
    bus = await Bus.connect(settings.nats_url, "cli", connect_timeout=2, creds=creds_for(settings))
    try:
        live = await get_session(bus, vault_for(settings), user)
        if live is None:
            return f"{user} has no Kite session: using the candles already stored"
        bar = Bar("candles")
        async with client_for(settings, live) as kite:
            wrote = await data.ensure(kite, settings.data_path, spec, progress=lambda i, n, w: bar(i / n, w))
        return f"fetched {wrote} candles"
    finally:
        await bus.close()


def fmt_money(paise: int | None) -> str:
    return "-" if paise is None else f"₹{paise / 100:,.2f}"


def summary_table(m: dict[str, Any], per_symbol: dict[str, dict]) -> str:
    pct = lambda x: "-" if x is None else f"{x * 100:.2f}%"
    num = lambda x: "-" if x is None else f"{x:.2f}"
    rows = [("net P&L", fmt_money(m["net_pnl"])), ("gross P&L", fmt_money(m["gross_pnl"])),
            ("charges", fmt_money(m["charges"])), ("total return", pct(m["total_return"])),
            ("annual return", pct(m["annual_return"])), ("Sharpe", num(m["sharpe"])), ("Sortino", num(m["sortino"])),
            ("Calmar", num(m["calmar"])), ("max drawdown", f"{fmt_money(m['max_drawdown'])} ({pct(m['max_drawdown_pct'])})"),
            ("max drawdown days", num(m["max_drawdown_days"])), ("trades", str(m["trades"])),
            ("win rate", pct(m["win_rate"])), ("profit factor", num(m["profit_factor"])),
            ("expectancy", fmt_money(m["expectancy"])), ("exposure", pct(m["exposure"])),
            ("turnover", f"{num(m['turnover'])}× capital"), ("bars", f"{m['bars']:,}"),
            ("refused signals", str(m["refused"]))]
    out = [f"{k:<20} {v}" for k, v in rows]
    if len(per_symbol) > 1:
        out.append("")
        out.append(f"{'symbol':<16} {'net P&L':>14} {'trades':>7} {'win rate':>9}")
        for sym, s in per_symbol.items():
            out.append(f"{sym:<16} {fmt_money(s['net_pnl']):>14} {s['trades']:>7} {pct(s['win_rate']):>9}")
    return "\n".join(out)


def sweep_table(report: dict[str, Any]) -> str:
    out = [f"{report['method']} sweep, objective {report['objective']}, {report['trial_count']} trials",
           f"{'window':<8} {'in sample':<25} {'out of sample':<25} {'trials':>6} {'IS':>9} {'OOS':>9}  params"]
    for w in report["windows"]:
        f = lambda x: "-" if x is None else f"{x:9.3f}"
        out.append(f"{w['window']:<8} {' → '.join(w['in_sample']):<25} {' → '.join(w['out_of_sample']):<25} "
                   f"{w['trials']:>6} {f(w.get('is_score'))} {f(w.get('oos_score'))}  {w.get('params', w.get('error'))}")
    out.append(f"mean in-sample {report['is_score']}  mean out-of-sample {report['oos_score']}  "
               f"out-of-sample net P&L {fmt_money(report['oos_net_pnl'])}")
    return "\n".join(out)


def cmd_backtest(settings: Settings, a: argparse.Namespace) -> int:
    from shared.candles.store import CandleError
    from strategy_worker.backtest import parallel
    from strategy_worker.backtest.engine import BacktestError, Cancelled
    from strategy_worker.backtest.job import execute
    from strategy_worker.backtest.store import BacktestStore
    from strategy_worker.backtest.sweep import Sweep

    try:
        spec = spec_of(a)
        print(asyncio.run(fetch(settings, a.user, spec)), file=sys.stderr)
        store = BacktestStore(settings.data_path / "backtests.db")
        run_id = uuid.uuid4().hex[:12]
        if a.sweep:
            grid = {k: v if isinstance(v, list) else [v] for k, v in
                    ((k, [_value(x) for x in str(v).split(",")]) for k, v in params_of(a.sweep).items())}
            sweep = msgspec.convert({"base": msgspec.to_builtins(spec), "grid": grid,
                                     "method": "optuna" if a.optuna else "grid", "trials": a.trials,
                                     "objective": a.objective, "in_sample": a.in_sample, "windows": a.windows},
                                    SweepSpec)
            pool = (parallel.RayPool(a.ray, settings.data_path, _tokens(settings, spec), spec.interval) if a.ray
                    else parallel.LocalPool(settings.data_path, a.workers))
            store.create(run_id, a.user, "sweep", sweep)
            try:
                report = Sweep(sweep, pool, progress=Bar("sweep")).run()
            finally:
                pool.close()
            store.finish_sweep(run_id, report)
            print(sweep_table(report))
        else:
            store.create(run_id, a.user, "backtest", spec)
            out = execute(spec, settings.data_path, run_id=run_id, progress=Bar("backtest"))
            store.finish(run_id, out["metrics"], out["per_symbol"], out["parts"], bars=out["bars"],
                         elapsed=out["elapsed"])
            print(summary_table(out["metrics"], out["per_symbol"]))
            if a.export:
                what = a.export_what
                with open(a.export, "w") as f:
                    f.write(store.export(run_id, what, "json" if a.export.endswith(".json") else "csv"))
        print(f"run {run_id} saved in {store.path}", file=sys.stderr)
        return 0
    except (BacktestError, CandleError) as e:
        print(f"kta backtest: {e.field}: {e}", file=sys.stderr)
        return 2
    except (Cancelled, KeyboardInterrupt):
        print("kta backtest: cancelled, nothing saved", file=sys.stderr)
        return 130


def _tokens(settings: Settings, spec: BacktestSpec) -> list[int]:
    """The instruments whose candles a sweep's trials read (an options backtest: its contracts too)."""
    from shared.candles.instruments import InstrumentArchive
    from strategy_worker.backtest.data import contract_spans
    from strategy_worker.backtest.engine import resolve
    from strategy_worker.backtest.job import candles_root, is_options

    instruments = InstrumentArchive(candles_root(settings.data_path)).load(spec.start)
    tokens = resolve(spec, instruments, "ray", "RAY").feed_tokens
    return tokens + sorted(contract_spans(spec, settings.data_path)) if is_options(spec) else tokens


def cmd_candles(settings: Settings, a: argparse.Namespace) -> int:
    from shared.candles.csv_import import import_csv
    from shared.candles.instruments import InstrumentArchive
    from shared.candles.store import CandleError, CandleStore
    from strategy_worker.backtest.engine import BacktestError
    from strategy_worker.backtest.job import candles_root

    try:
        if a.action == "import":
            archive = InstrumentArchive(candles_root(settings.data_path))
            known = {i.tradingsymbol: i.instrument_token for i in archive.load(date.today()) if i.exchange == a.exchange}

            def token_of(symbol: str) -> int:
                symbol = symbol.split(":")[-1]
                if symbol not in known:
                    raise CandleError("symbol", f"unknown {a.exchange} symbol {symbol!r} (no instrument snapshot "
                                                "has it: run `kta candles refresh` once)")
                return known[symbol]

            counts = import_csv(CandleStore(candles_root(settings.data_path)), a.file, a.interval, token_of)
            for sym, n in counts.items():
                print(f"{sym}: {n} candles")
            return 0
        spec = msgspec.convert({"strategy": "ema_crossover", "symbols": a.symbols.upper().split(","), "start": a.start,
                                "end": a.end, "interval": a.interval, "warmup_bars": 0}, BacktestSpec)
        print(asyncio.run(fetch(settings, a.user, spec)))
        return 0
    except (BacktestError, CandleError) as e:
        print(f"kta candles: {e.field}: {e}", file=sys.stderr)
        return 2
    except msgspec.ValidationError as e:
        print(f"kta candles: {e}", file=sys.stderr)
        return 2


def add_parsers(sub) -> tuple[argparse.ArgumentParser, argparse.ArgumentParser]:
    bt = sub.add_parser("backtest", help="backtest a strategy on stored candles (or sweep its params)")
    bt.add_argument("--strategy", required=True)
    bt.add_argument("--symbols", required=True, help="INFY,TCS or NSE:INFY,...")
    bt.add_argument("--from", dest="start", required=True, help="first day, YYYY-MM-DD")
    bt.add_argument("--to", dest="end", required=True, help="last day, YYYY-MM-DD")
    bt.add_argument("--interval", default="5minute")
    bt.add_argument("--param", action="append", default=[], help="name=value (repeat)")
    bt.add_argument("--capital", type=float, default=1_000_000, help="rupees")
    bt.add_argument("--slippage-ticks", type=int, default=1)
    bt.add_argument("--warmup-bars", type=int, default=300)
    bt.add_argument("--user", default="DEMO01", help="whose Kite session fetches missing candles")
    bt.add_argument("--export", default="", help="write a part of the result to FILE (.csv or .json)")
    bt.add_argument("--export-what", default="trades", help="metrics, per_symbol, curve, daily, orders, trades, fills, "
                                                              "refusals, structures")
    bt.add_argument("--sweep", action="append", default=[], help="name=v1,v2,... (repeat): sweep these params")
    bt.add_argument("--optuna", action="store_true", help="Optuna's TPE sampler instead of the full grid")
    bt.add_argument("--trials", type=int, default=64)
    bt.add_argument("--objective", default="sharpe")
    bt.add_argument("--in-sample", type=float, default=0.7)
    bt.add_argument("--windows", type=int, default=1, help="rolling walk-forward windows")
    bt.add_argument("--workers", type=int, default=0, help="local processes (default: every core)")
    bt.add_argument("--ray", default="", help="run the sweep on the Ray cluster at ADDRESS")
    c = sub.add_parser("candles", help="the local candle store: refresh from Kite, import a CSV")
    c.add_argument("action", choices=["refresh", "import"])
    c.add_argument("file", nargs="?", default="")
    c.add_argument("--symbols", default="")
    c.add_argument("--from", dest="start", default="")
    c.add_argument("--to", dest="end", default="")
    c.add_argument("--interval", default="minute")
    c.add_argument("--exchange", default="NSE")
    c.add_argument("--user", default="DEMO01")
    return bt, c
