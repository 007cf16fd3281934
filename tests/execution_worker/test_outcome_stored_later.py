"""An outcome is journaled, then stored in its stream without the stream's ack awaited on the way (issue #18: a
fill's outcome no longer holds up the position's stop by a round trip): one the stream could not store when it was
told is published again until it is, once — not lost until the worker's next start."""

from __future__ import annotations

import msgspec

from execution_worker.journal import Journal
from execution_worker.outcomes import Outcomes
from shared import messages as m
from shared import natsd, store_later, subjects
from shared.bus import Bus
from shared.trading.positions import PositionTracker
from tests.helpers import eventually

USER = "DEMO01"


async def test_an_outcome_the_stream_could_not_store_is_stored_once_it_can(tmp_path, monkeypatch):
    monkeypatch.setattr(store_later, "RETRIES", (0.2, 0.4, 0.8, 1.6, 3.2, 6.4))
    port = natsd.free_port()
    proc = natsd.start(port, tmp_path / "js")  # a server of its own: no stream yet
    bus = await Bus.connect(f"nats://127.0.0.1:{port}", "execution")
    journal = Journal(tmp_path / "journal.db")
    try:
        outcomes = Outcomes(bus, journal, USER, PositionTracker())
        told = await outcomes.emit("accepted:sig-1", kind="accepted", strategy_id="s-1", signal_id="sig-1")
        assert told.seq == journal.last_outcome_seq(USER)  # journaled first; no stream answered its publish
        await bus.ensure_streams()  # the stream is there now (a NATS node back, its leader elected)

        async def stored() -> list[m.StrategyOutcome]:
            state = (await bus.js.stream_info(subjects.STREAM_OUTCOMES)).state
            if not state.messages:
                return []
            last = await bus.js.get_msg(subjects.STREAM_OUTCOMES, state.last_seq)  # (subjects get a partition)
            return [msgspec.msgpack.decode(last.data, type=m.StrategyOutcome)]

        (kept,) = await eventually(stored, what="the outcome stored by a later try")
        assert (kept.seq, kept.kind, kept.signal_id) == (told.seq, "accepted", "sig-1")
        await outcomes.emit("accepted:sig-1", kind="accepted", strategy_id="s-1", signal_id="sig-1")  # told again
        second = await outcomes.emit("refused:sig-2", kind="refused", strategy_id="s-1", signal_id="sig-2")
        (last,) = await eventually(lambda: _with_seq(stored(), second.seq), what="the next outcome stored")
        assert last.kind == "refused"
        assert (await bus.js.stream_info(subjects.STREAM_OUTCOMES)).state.messages == 2  # the first kept once
    finally:
        journal.close()
        await bus.close()
        proc.terminate()
        proc.wait(10)


async def _with_seq(outcomes, seq: int) -> list[m.StrategyOutcome]:
    return [o for o in await outcomes if o.seq == seq]


async def test_acks_are_matched_without_nats_py_private_request_plumbing(tmp_path, monkeypatch, caplog):
    """nats-py is not pinned: a release that renames its private request map must not break every outcome."""
    port = natsd.free_port()
    proc = natsd.start(port, tmp_path / "js")
    bus = await Bus.connect(f"nats://127.0.0.1:{port}", "execution")
    await bus.ensure_streams()
    journal = Journal(tmp_path / "journal.db")
    caplog.set_level("WARNING", logger="kta.bus")
    try:
        outcomes = Outcomes(bus, journal, USER, PositionTracker())
        with monkeypatch.context() as renamed:  # (nats-py's own requests need them back for the checks below)
            for private in ("_resp_map", "_resp_sub_prefix"):
                renamed.delattr(bus.nc, private)
            for n in range(3):
                await outcomes.emit(f"accepted:sig-{n}", kind="accepted", strategy_id="s-1", signal_id=f"sig-{n}")
        answers = store_later._answers(bus)
        await eventually(lambda: not answers.waiting, what="every store's ack matched to its publish")
        assert (await bus.js.stream_info(subjects.STREAM_OUTCOMES)).state.messages == 3
        assert not [r for r in caplog.records if "not stored" in r.getMessage()]
    finally:
        journal.close()
        await bus.close()
        proc.terminate()
        proc.wait(10)
