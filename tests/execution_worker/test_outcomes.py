"""Strategies learn what happened: every signal's fate comes back on kta.u.<user>.outcomes with the
strategy's position from the journaled fills, once each, in seq order; a restarted strategy worker
rebuilds its positions with GetStrategyPositions."""

from shared import messages as m
from shared import subjects
from tests.execution_worker.kit import USER, signal
from tests.helpers import eventually


class Outcomes:
    """Every outcome the worker publishes for DEMO01, as a strategy worker would see them."""

    def __init__(self) -> None:
        self.seen: list[m.StrategyOutcome] = []

    async def start(self, bus) -> "Outcomes":
        async def on(out, msg):
            self.seen.append(out)

        await bus.subscribe(subjects.outcomes(USER), m.StrategyOutcome, on)
        return self

    def of(self, strategy_id: str, kind: str | None = None) -> list[m.StrategyOutcome]:
        return [o for o in self.seen if o.strategy_id == strategy_id and (kind is None or o.kind == kind)]


async def test_fills_refusals_rejections_and_cancels_reach_the_strategy(bus, sim, stack):
    _, journal, kite = stack
    outcomes = await Outcomes().start(bus)
    entry = signal("out-entry-1", qty=3, strategy_id="out-1")
    await bus.js_publish(subjects.signals(USER), entry, msg_id=entry.id)
    fill = await eventually(lambda: outcomes.of("out-1", "filled"), what="the entry's fill outcome")
    assert outcomes.of("out-1", "accepted")[0].signal_id == entry.id
    await eventually(lambda: sum(o.quantity for o in outcomes.of("out-1", "filled")) == 3, what="all fills")
    last = outcomes.of("out-1", "filled")[-1]
    assert (last.position, last.signal_id, last.order_kind, last.tradingsymbol) == (3, entry.id, "entry", "INFY")
    assert fill[0].trade_id and fill[0].price > 0 and fill[0].transaction_type is m.TransactionType.BUY

    too_big = signal("out-too-big", qty=500, strategy_id="out-1")
    await bus.js_publish(subjects.signals(USER), too_big, msg_id=too_big.id)
    refused = await eventually(lambda: outcomes.of("out-1", "refused"), what="the refusal")
    assert (refused[0].code, refused[0].signal_id, refused[0].position) == ("POSITION_SIZE", too_big.id, 3)

    alerts: list[m.Alert] = []

    async def on_alert(a, msg):
        alerts.append(a)

    await bus.subscribe(subjects.alerts(USER), m.Alert, on_alert)
    sim.faults(reject_next=1, reject_reason="RMS:Margin Exceeds")
    rejected_sig = signal("out-rejected", qty=1, strategy_id="out-2")
    await bus.js_publish(subjects.signals(USER), rejected_sig, msg_id=rejected_sig.id)
    rejected = await eventually(lambda: outcomes.of("out-2", "rejected"), what="the rejection")
    assert "Margin" in rejected[0].reason and rejected[0].position == 0
    (told,) = await eventually(lambda: [a for a in alerts if a.kind == "order_rejected"], what="the trader alerted")
    (order,) = journal.orders_of_signal(rejected_sig.id)
    assert told.key == f"rejected:{order['tag']}" and "Margin" in told.detail and told.severity == "warning"

    sim.faults(partial_then_cancel_next=1)
    partial = signal("out-partial", qty=40, strategy_id="out-3")
    await bus.js_publish(subjects.signals(USER), partial, msg_id=partial.id)
    cancelled = await eventually(lambda: outcomes.of("out-3", "cancelled"), what="the cancelled remainder")
    filled = await eventually(lambda: sum(o.quantity for o in outcomes.of("out-3", "filled")) + cancelled[0].quantity
                              == 40 and outcomes.of("out-3", "filled"), what="the partial fill")
    assert filled[-1].position == 40 - cancelled[0].quantity > 0

    seqs = [o.seq for o in outcomes.seen]
    assert len(set(seqs)) == len(seqs) and all(s > 0 for s in seqs)  # once each, numbered by the journal
    reply = await bus.request(subjects.cmd(USER, "execution", "strategy_positions"), m.GetStrategyPositions())
    assert isinstance(reply, m.Ok) and reply.data["seq"] >= max(seqs)
    held = {(p["strategy_id"], p["tradingsymbol"]): p["quantity"] for p in reply.data["positions"]}
    assert held[("out-1", "INFY")] == 3 and held[("out-3", "INFY")] == filled[-1].position
    assert ("out-2", "INFY") not in held
    one = await bus.request(subjects.cmd(USER, "execution", "strategy_positions"),
                            m.GetStrategyPositions(strategy_id="out-1"))
    assert {p["strategy_id"] for p in one.data["positions"]} == {"out-1"}
    flat = [signal(f"out-flat-{s}", side="SELL", qty=q, intent="exit", strategy_id=s)
            for s, q in (("out-1", 3), ("out-3", filled[-1].position))]
    for sig in flat:
        await bus.js_publish(subjects.signals(USER), sig, msg_id=sig.id)
    await eventually(lambda: all(outcomes.of(s.strategy_id, "filled")[-1].position == 0 for s in flat),
                     what="both strategies flat again")
