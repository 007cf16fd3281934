"""A single-instrument signal: risk decides from the books, then the order(s) go to the broker.

An exit first takes the position's protective orders off the broker (and the strategy's working
entries on it) and waits until they are final, and shrinks its GTT (CNC/NRML) to what the exit leaves,
so a stop-loss and the exit can never both fill;
it is then clamped again to what is still held."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Coroutine
from typing import Any

from execution_worker import margin_check, placing
from execution_worker.engine import Desk
from execution_worker.journal import ACCEPTED, REFUSED
from shared import subjects
from shared.messages import OrderEvent, OrderRequest, Signal, SignalGroup
from shared.trading import margin, planning
from shared.trading.greeks import greeks_inputs, net_greeks, trades_options
from shared.trading.order import REFUSED as REFUSED_STATE
from shared.trading.positions import signed
from shared.trading.protection import position_key
from shared.trading.risk import RiskDecision, limit_prices
from shared.trading.risk_context import context_from, instruments_of

log = logging.getLogger("kta.execution")
EXIT_CANCEL_TIMEOUT = 10.0


async def judge(desk: Desk, sig: Signal | SignalGroup) -> RiskDecision:
    """Risk's decision on ``sig`` from the books, with last prices (ticks, else one ``ltp``; for a signal
    with a stop or target, the ``quote`` that reads its circuit band), and the greeks of its options."""
    lines = [(f"{ex}:{sym}", qty) for (ex, sym, _), qty in zip(instruments_of(sig), _signed(sig))]
    keys = [k for k, _ in lines]
    tokens = {f"{ex}:{sym}": tok for (ex, sym, _), tok in zip(instruments_of(sig), _tokens(sig))}
    await desk.prices.follow(tokens)
    # the positions' greeks only for a signal trading options (building every position a signal: O(positions))
    held = desk.tracker.positions() if trades_options(desk.instruments, lines) else []
    underlying, _, _, greek_keys = greeks_inputs(desk.instruments, held, lines)
    exiting = sig.intent == "exit"
    banded = any(limit_prices(sig)) or isinstance(sig, Signal) and (sig.stop_loss or sig.target or sig.trigger_price)
    # The band first: its ``quote`` prices the instrument too, so a new one costs one call of Kite's 1/s quote
    # budget, not an ``ltp`` and then a ``quote`` a second apart. An exit reads nothing: the band if known.
    circuits = await desk.prices.circuits(desk.client, keys) if banded and not exiting else \
        desk.prices.known_bands(keys)
    prices = {} if exiting else await desk.prices.prices(desk.client, sorted(set(keys) | set(greek_keys)))
    greeks = net_greeks(desk.instruments, held, lines, prices) if underlying and not exiting \
        else None
    lot_sizes = {k: planning.lot_of(desk.instruments.get(k)) for k in keys}
    ctx = context_from(desk.tracker, desk.book, sig, prices=prices, lot_sizes=lot_sizes, circuits=circuits,
                       greeks=greeks.held if greeks else None, signal_greeks=greeks.added if greeks else (0.0, 0.0),
                       underlying=underlying, greeks_priced=greeks.priced if greeks else True)
    before = desk.risk.state
    decision = desk.risk.validate_signal(sig, ctx)
    if desk.risk.state is not before and desk.on_risk is not None:  # the check itself found the limit passed
        await desk.on_risk(desk, desk.risk.snapshot())  # the same response as a trip on a fill or a tick
    return decision


def _signed(sig: Signal | SignalGroup) -> list[int]:
    if isinstance(sig, SignalGroup):
        return [signed(leg.transaction_type, leg.quantity) for leg in sig.legs]
    return [signed(sig.transaction_type, sig.quantity)]


def _tokens(sig: Signal | SignalGroup) -> list[int]:
    return [leg.instrument_token for leg in sig.legs] if isinstance(sig, SignalGroup) else [sig.instrument_token]


def decided_quantities(desk: Desk, sig: Signal | SignalGroup) -> tuple[int, ...]:
    """The quantities an accepted signal was decided with (a redelivery places the same)."""
    row = desk.journal.signal(sig.id) or {}
    return tuple(json.loads(row.get("quantities") or "[]"))


async def on_signal(desk: Desk, sig: Signal) -> None:
    """Decide on ``sig`` and see its orders to the broker."""
    sending = await decide(desk, sig)
    if sending is not None:
        await sending


async def decide(desk: Desk, sig: Signal) -> Coroutine[Any, Any, None] | None:
    """Judge ``sig`` from the in-memory books and journal the decision (under the desk's lock, one
    decision at a time). Returns what is left to do — its orders' way to the broker, an exit's clearing of
    the position's stop first — for the caller to run without holding up the user's next decision
    (None: refused, nothing to send)."""
    decision = desk.journal.signal_decision(sig.id)
    if decision == REFUSED:
        return None  # a redelivery of a refused signal: the decision stands
    decided = None
    if decision is None:
        verdict = await judge(desk, sig)
        code, reason = verdict.code, verdict.reason
        if verdict.ok and sig.intent == "entry":  # the account can carry it (POST /margins/basket)
            entry = planning.signal_requests(sig, desk.inst(sig.exchange.value, sig.tradingsymbol),
                                             desk.market_protection, quantity=(verdict.quantities or (sig.quantity,))[0])
            short = await margin_check.refusal(desk, entry) if margin_check.worth_checking(desk, entry) else None
            if short:
                code, reason = margin.CODE, short
        if not verdict.ok or code == margin.CODE:
            desk.journal.record_signal(sig, REFUSED, reason, code)
            await refused(desk, sig, code, reason)
            return None
        decided = tuple(verdict.quantities or ())
    with desk.journal.together():  # the decision and its orders land together: one commit
        if decision is None:
            desk.journal.record_signal(sig, ACCEPTED, verdict.reason, quantities=verdict.quantities)
        # a redelivery places what was decided the first time (the journal says), not a fresh judgement
        quantity = ((decided if decided is not None else decided_quantities(desk, sig)) or (sig.quantity,))[0]
        if sig.intent == "exit" and desk.protector is not None:
            return _exit(desk, sig, quantity)
        if desk.protector is not None:
            desk.protector.register(sig)
        reqs = requests(desk, sig, quantity)
        admitted = {}
        for req in reqs:  # in the book before the next decision: risk counts them while they are on their way
            if desk.book.get(req.tag) is None:
                order = desk.new_order(req, sig.strategy_id, journal=False)  # its row: below, in this commit
                # one order sent at once is SUBMITTING in this commit (a second leaves after the first's answer);
                # its row is then written once, SUBMITTING (admit_now's apply), not INITIALIZED and again
                applied = placing.admit_now(desk, order) if len(reqs) == 1 else None
                if applied is not None:
                    admitted[req.tag] = applied
                if applied is None or not applied.ok:  # (a refused transition journals nothing)
                    desk.journal.save_order(order, desk.role(order))
        return _place(desk, sig, reqs, admitted)


async def _exit(desk: Desk, sig: Signal, quantity: int) -> None:
    key = position_key(sig.strategy_id, sig.exchange.value, sig.tradingsymbol)
    async with desk.exiting.setdefault(key, asyncio.Lock()):  # a position's exits clear it one after the other
        async with desk.protector.holding([key]):
            quantity = await clear_for_exit(desk, sig, quantity)
            if not quantity:
                await desk.outcomes.emit(f"cancelled:{sig.id}", kind="cancelled", reason="nothing left to exit: "
                                         "the position was closed meanwhile (its stop-loss or target)",
                                         **signal_fields(sig))
                return
            await _place(desk, sig, requests(desk, sig, quantity))


def requests(desk: Desk, sig: Signal, quantity: int) -> list[OrderRequest]:
    """The signal's orders for ``quantity``, priced to be marketable at the last known price."""
    inst = desk.inst(sig.exchange.value, sig.tradingsymbol)
    price = desk.prices.known(f"{sig.exchange.value}:{sig.tradingsymbol}")
    kind = "manual" if sig.metadata.get("source") == "manual" else None  # a trader's own order
    return [planning.marketable(req, inst, price)
            for req in planning.signal_requests(sig, inst, desk.market_protection, kind=kind, quantity=quantity)]


async def _place(desk: Desk, sig: Signal, reqs: list[OrderRequest], admitted: dict | None = None) -> None:
    for req in reqs:
        await placing.place(desk, req, sig.strategy_id, (admitted or {}).get(req.tag))
    await desk.outcomes.emit(f"accepted:{sig.id}", kind="accepted", **signal_fields(sig))


async def clear_for_exit(desk: Desk, sig: Signal, quantity: int) -> int:
    """Cancel the position's protective orders and the strategy's working entries on it, wait until
    they are final, and return what may still be exited (0: the position closed meanwhile)."""
    if desk.book.of_signal(sig.id):
        return quantity  # a redelivery: its orders exist, placing them again is a no-op
    exchange, symbol = sig.exchange.value, sig.tradingsymbol
    clearing = [o for o in desk.book.working_for(sig.strategy_id, exchange, symbol)
                if o.is_protective or o.kind == "entry"]
    for order in clearing:
        await placing.cancel(desk, order, f"exit signal {sig.id}")
    # and the position's orders the broker has reported filled whose fills are not journaled yet (a stop's
    # COMPLETE is heard before its trades are read): the position is read once they are in it
    await placing.wait_final(desk, clearing + desk.book.owing((sig.strategy_id, exchange, symbol)), EXIT_CANCEL_TIMEOUT)
    held = desk.tracker.held(sig.strategy_id, exchange, symbol)[0]
    if held * signed(sig.transaction_type, 1) >= 0:
        return 0
    closing = sum(o.remaining for o in desk.book.working_for(sig.strategy_id, exchange, symbol)
                  if not o.is_protective and o.sign * held < 0)
    quantity = max(0, min(quantity, abs(held) - closing))
    if quantity and desk.protector is not None \
            and not await desk.protector.make_room(sig.strategy_id, exchange, symbol, quantity):
        log.warning("exit %s not placed: the position's GTT could not be resized first", sig.id,
                    extra={"user_id": desk.user_id})
        return 0
    return quantity


def signal_fields(sig: Signal) -> dict:
    return dict(strategy_id=sig.strategy_id, signal_id=sig.id, order_kind=sig.intent, exchange=sig.exchange.value,
                tradingsymbol=sig.tradingsymbol, instrument_token=sig.instrument_token,
                transaction_type=sig.transaction_type, quantity=sig.quantity)


async def refused(desk: Desk, sig: Signal, code: str, reason: str) -> None:
    ev = OrderEvent(user_id=desk.user_id, order_id="", signal_id=sig.id, kind=sig.intent, state=REFUSED_STATE,
                    status_message=f"{code}: {reason}", exchange=sig.exchange.value,
                    tradingsymbol=sig.tradingsymbol, instrument_token=sig.instrument_token,
                    transaction_type=sig.transaction_type, order_type=sig.order_type, product=sig.product,
                    quantity=sig.quantity, ts=time.time_ns())
    await desk.bus.publish(subjects.orders(desk.user_id), ev)  # as Desk._tell: stored, its ack not awaited
    await desk.outcomes.emit(f"refused:{sig.id}", kind="refused", code=code, reason=reason, **signal_fields(sig))
    log.info("signal %s refused: %s %s", sig.id, code, reason, extra={"user_id": desk.user_id})
