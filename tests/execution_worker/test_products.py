"""One strategy, one instrument, one product: Kite keeps a user's MIS and NRML/CNC positions in an
instrument apart, so an order in another product than the strategy's open position never changes that
position — an "exit" in CNC of an MIS long would open a CNC short beside it. Such a signal is refused
with PRODUCT_MISMATCH (the strategy hears why), through the real worker and kite_sim."""

import msgspec

from shared import messages as m
from shared import subjects
from tests.execution_worker.kit import USER, broker, signal
from tests.helpers import eventually


def held(journal, strategy_id: str) -> int:
    return sum(t["quantity"] * (1 if t["transaction_type"] == "BUY" else -1) for t in journal.trades(USER)
               if t["strategy_id"] == strategy_id)


async def test_a_second_product_on_a_held_instrument_is_refused_with_its_code(bus, stack):
    _, journal, kite = stack
    entry = signal("prod-mis-1", qty=3, strategy_id="prod-1")  # MIS
    await bus.js_publish(subjects.signals(USER), entry, msg_id=entry.id)
    await eventually(lambda: held(journal, "prod-1") == 3, what="the MIS entry filled")

    cnc_entry = msgspec.structs.replace(signal("prod-cnc-1", qty=2, strategy_id="prod-1"), product=m.Product.CNC)
    cnc_exit = msgspec.structs.replace(signal("prod-cnc-x", side="SELL", qty=3, intent="exit", strategy_id="prod-1"),
                                       product=m.Product.CNC)
    for sig in (cnc_entry, cnc_exit):
        await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
    await eventually(lambda: all(journal.signal_decision(s.id) == "refused" for s in (cnc_entry, cnc_exit)),
                     what="both refused")
    for sig in (cnc_entry, cnc_exit):
        row = journal.signal(sig.id)
        assert row["code"] == "PRODUCT_MISMATCH" and "as MIS" in row["reason"], row
        assert not journal.orders_of_signal(sig.id)
    # the strategy is told after the refusal's order event is published: a moment after the decision is journaled
    told = await eventually(lambda: len(t := [o for o in journal.outcomes(USER)
                                              if o["signal_id"] in (cnc_entry.id, cnc_exit.id)]) == 2 and t,
                            what="both strategies told")
    assert sorted((o["kind"], o["code"]) for o in told) == [("refused", "PRODUCT_MISMATCH")] * 2
    assert not [o for o in await broker(kite.orders) if o.product == "CNC" and o.tradingsymbol == "INFY"]

    out = signal("prod-mis-x", side="SELL", qty=3, intent="exit", strategy_id="prod-1")  # in its own product
    await bus.js_publish(subjects.signals(USER), out, msg_id=out.id)
    await eventually(lambda: held(journal, "prod-1") == 0, what="the MIS exit closed it")
    again = msgspec.structs.replace(signal("prod-cnc-2", qty=2, strategy_id="prod-1"), product=m.Product.CNC)
    await bus.js_publish(subjects.signals(USER), again, msg_id=again.id)  # flat: any product may open
    await eventually(lambda: held(journal, "prod-1") == 2, what="the CNC entry on a flat book filled")
    assert journal.signal(again.id)["decision"] == "accepted"
    close = msgspec.structs.replace(signal("prod-cnc-3", side="SELL", qty=2, intent="exit", strategy_id="prod-1"),
                                    product=m.Product.CNC)
    await bus.js_publish(subjects.signals(USER), close, msg_id=close.id)
    await eventually(lambda: held(journal, "prod-1") == 0, what="flat again")
