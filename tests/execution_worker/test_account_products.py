"""The account's own positions (strategy "": what the cross-check adopted from trades placed in Kite) are kept per
product, as Kite keeps them: an MIS and an NRML position in the same contract are two positions, adopted once each
(not traded back and forth between the products on every positions pass), and Square off all closes each in its
own product."""

import asyncio

from shared import messages as m
from shared import subjects
from tests.execution_worker.kit import USER, broker, nifty_chain, signal
from tests.execution_worker.test_controls import ask
from tests.helpers import eventually


def own(journal, symbol: str, product: str) -> list[dict]:
    return [t for t in journal.trades(USER) if t["strategy_id"] == "" and t["tradingsymbol"] == symbol
            and t["product"] == product]


def net(trades: list[dict]) -> int:
    return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1) for t in trades)


async def test_an_mis_and_an_nrml_position_placed_in_kite_stay_two_positions(bus, stack):
    _, journal, kite = stack
    option = (await nifty_chain(kite))[26000.0]
    symbol, lot = option.tradingsymbol, option.lot_size
    passes: asyncio.Queue = asyncio.Queue()

    async def on_positions(snap, msg):
        await passes.put(snap)

    await bus.subscribe(subjects.positions(USER), m.PositionSnapshot, on_positions)
    await bus.sync()
    first = signal("acct-warm", qty=1, strategy_id="warm")  # a strategy trading: the positions passes run
    await bus.js_publish(subjects.signals(USER), first, msg_id=first.id)
    await eventually(lambda: journal.signal_decision(first.id) == "accepted", what="the strategy's entry")
    for product in ("MIS", "NRML"):  # the trader buys a lot in Kite, intraday and carry-forward
        await broker(kite.place_order, "regular", "NFO", symbol, "BUY", lot, product, "MARKET", market_protection=-1,
                     tag=f"byhand{product}")
    await eventually(lambda: net(own(journal, symbol, "MIS")) == lot and net(own(journal, symbol, "NRML")) == lot,
                     timeout=30, what="both adopted for the account, each in its product")
    while not passes.empty():
        passes.get_nowait()
    for _ in range(3):  # three more positions passes, each cross-checked: nothing more to adopt
        snap = await asyncio.wait_for(passes.get(), 30)
    assert (len(own(journal, symbol, "MIS")), len(own(journal, symbol, "NRML"))) == (1, 1), journal.trades(USER)
    mine = sorted((p.product, p.quantity) for p in snap.positions if p.tradingsymbol == symbol and not p.strategy_id
                  and p.quantity)
    assert mine == [("MIS", lot), ("NRML", lot)], snap.positions

    out = await ask(bus, "execution", m.SquareOffAll(reason="flat"))
    assert isinstance(out, m.Ok), out
    await eventually(lambda: net(own(journal, symbol, "MIS")) == 0 and net(own(journal, symbol, "NRML")) == 0,
                     timeout=30, what="each closed in its own product")
    at_broker = {p.product: p.quantity for p in (await broker(kite.positions)).net if p.tradingsymbol == symbol}
    assert at_broker.get("MIS", 0) == 0 and at_broker.get("NRML", 0) == 0, at_broker
    assert (await ask(bus, "risk", m.ResetKillSwitch(reason="test over"))).data["state"] == "ACTIVE"
