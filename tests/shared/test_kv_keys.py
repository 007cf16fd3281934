"""Live keys of a KV bucket from the stream's subject index (nats-py's ``keys()`` can miss them under load)."""

from __future__ import annotations

from shared.kv_keys import live_entries, live_keys


async def test_live_keys_leave_out_deleted_and_purged_keys_and_keep_the_latest_value(bus):
    kv = await bus.kv("kta_kv_keys_test")
    assert await live_keys(kv) == []  # an empty bucket is no error
    for key in ("exec.p0", "exec.p1", "exec.p2", "exec.m.a", "execx.p0", "other"):
        await kv.put(key, b"first")
    await kv.put("exec.p0", b"second")
    await kv.delete("exec.p1")
    await kv.purge("exec.p2")
    entries = await live_entries(kv)
    assert sorted(entries) == ["exec.m.a", "exec.p0", "execx.p0", "other"]
    assert entries["exec.p0"].value == b"second"
    assert entries["exec.p0"].revision == (await kv.get("exec.p0")).revision
    assert await live_keys(kv, "exec") == ["exec.m.a", "exec.p0"]  # below "exec." only, not "execx."
    await kv.put("exec.p1", b"back")
    assert await live_keys(kv, "exec") == ["exec.m.a", "exec.p0", "exec.p1"]
