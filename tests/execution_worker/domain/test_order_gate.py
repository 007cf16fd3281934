"""The order gate against an injected clock: Kite's 10/s, 400/min, 5,000/day and 25 modifications."""

import asyncio

import pytest

from execution_worker.order_gate import OrderGate, OrderGateError
from tests.helpers import eventually

from .kit import Clock


def test_ten_a_second_then_wait_for_the_oldest_to_age_out():
    clock = Clock()
    gate = OrderGate(clock=clock)
    t0 = clock()
    assert all(gate.admit(t0 + i * 0.01) for i in range(10))
    assert not gate.admit(t0 + 0.5)
    assert gate.wait_needed(t0 + 0.5) == pytest.approx(0.5)
    assert gate.admit(t0 + 1.0)  # the first order is a second old


def test_four_hundred_a_minute():
    clock = Clock()
    gate = OrderGate(clock=clock)
    t0 = clock()
    for i in range(400):  # 8 a second: never the per-second cap
        assert gate.admit(t0 + i * 0.125)
    now = t0 + 400 * 0.125  # 50 s in
    assert not gate.admit(now) and gate.wait_needed(now) == pytest.approx(10.0)
    assert gate.admit(t0 + 60.0)


def test_five_thousand_a_day_refused_with_the_reason_until_the_next_day():
    clock = Clock("2026-11-24 09:15:00")
    gate = OrderGate(clock=clock, per_second=10_000, per_minute=10_000)
    t0 = clock()
    for i in range(5000):
        assert gate.admit(t0 + i * 0.001)
    with pytest.raises(OrderGateError) as refused:
        gate.admit(t0 + 10)
    assert refused.value.code == "ORDER_DAILY_LIMIT" and "5000" in refused.value.message
    clock.set("2026-11-25 09:15:00")
    assert gate.admit(clock())


def test_cancels_share_the_windows_but_never_the_daily_cap():
    """The gate is the one limiter of order calls: a cancel waits its turn in the per-second window with
    the placements, but past the day's 5,000 it still goes (it only takes risk off) and does not count."""
    clock = Clock("2026-11-24 09:15:00")
    gate = OrderGate(clock=clock, per_day=3)
    t0 = clock()
    assert all(gate.admit(t0 + i * 0.01) for i in range(3))
    with pytest.raises(OrderGateError):
        gate.admit(t0 + 0.05)
    assert all(gate.admit(t0 + 0.1 + i * 0.01, daily=False) for i in range(7))  # 10 calls in the second
    assert not gate.admit(t0 + 0.5, daily=False) and gate.wait_needed(t0 + 0.5, daily=False) == pytest.approx(0.5)
    assert gate.admit(t0 + 1.0, daily=False) and gate.today == 3


def test_twenty_five_modifications_per_order():
    gate = OrderGate(clock=Clock())
    for _ in range(25):
        gate.modify("A1")
    gate.modify("B1")  # counted per order
    with pytest.raises(OrderGateError) as refused:
        gate.modify("A1")
    assert refused.value.code == "MODIFICATION_LIMIT"
    gate.forget("A1")
    gate.modify("A1")


async def test_acquire_waits_on_the_injected_clock():
    clock = Clock()
    slept: list[float] = []

    async def advance(seconds: float) -> None:  # time passes only when the gate waits
        slept.append(seconds)
        clock.t += seconds
        await asyncio.sleep(0)

    gate = OrderGate(clock=clock, sleep=advance)
    t0 = clock()
    for _ in range(25):
        await gate.acquire()
    assert gate.waits == 2 and slept == [pytest.approx(1.0), pytest.approx(1.0)]
    assert clock() - t0 == pytest.approx(2.0)


async def test_an_urgent_call_goes_before_the_entries_waiting_for_the_window():
    """Risk off first: with the window full, entries queue; a stop (or a flatten, an exit, a cancel) arriving
    after them takes the next free slot, and the entries follow in their order of arrival."""
    clock = Clock()
    opened = asyncio.Event()

    async def wait_for_window(seconds: float) -> None:  # time moves when the test opens the window
        await opened.wait()
        clock.t += seconds

    gate = OrderGate(clock=clock, sleep=wait_for_window, per_second=2)
    await gate.acquire()
    await gate.acquire()  # the window is full
    order: list[str] = []

    async def call(name: str, urgent: bool = False) -> None:
        await gate.acquire(urgent=urgent)
        order.append(name)

    waiting = [asyncio.ensure_future(call("entry-1")), asyncio.ensure_future(call("entry-2"))]
    await eventually(lambda: gate.queued == 2, what="the entries queued, the first waiting for the window")
    waiting.append(asyncio.ensure_future(call("stop", urgent=True)))
    await eventually(lambda: gate.queued == 3, what="the stop queued after them")
    assert order == []
    opened.set()
    await asyncio.gather(*waiting)
    assert order[0] == "stop" and order[1:] == ["entry-1", "entry-2"]
