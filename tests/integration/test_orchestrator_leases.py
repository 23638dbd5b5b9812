"""Per-agent step leases on the real KV bucket: exclusive, re-acquirable, taken over after expiry."""

from __future__ import annotations

import asyncio
import time

from mnemo.common import ids, subjects
from mnemo.orchestrator.leases import LeaseManager


async def test_lease_is_exclusive_and_released(nc):
    kv = await nc.jetstream().key_value(subjects.KV_LEASES)
    a, b = LeaseManager(kv, "A", 5), LeaseManager(kv, "B", 5)
    key = f"t1.{ids.new_id('agent')}"
    first = await a.acquire(key)
    assert first is not None and await b.acquire(key) is None
    await a.release(first)
    again = await a.acquire(key)  # fast path: CAS on our own delete marker
    assert again is not None and again.revision > first.revision
    assert await b.acquire(key) is None
    assert await a.refresh(again)
    await a.release(again)
    other = await b.acquire(key)  # another replica after the release
    assert other is not None
    assert await a.acquire(key) is None  # A's remembered marker is stale: still refused
    await b.release(other)
    assert await a.acquire(key) is not None


async def test_expired_lease_of_a_dead_holder_is_taken_over(nc):
    kv = await nc.jetstream().key_value(subjects.KV_LEASES)
    dead, alive = LeaseManager(kv, "dead", 0.2), LeaseManager(kv, "alive", 5)
    key = f"t1.{ids.new_id('agent')}"
    held = await dead.acquire(key)
    assert held is not None and await alive.acquire(key) is None
    deadline = time.monotonic() + 5
    taken = None
    while taken is None and time.monotonic() < deadline:
        taken = await alive.acquire(key)  # polls a condition (expiry), not a fixed sleep
        if taken is None:
            await asyncio.sleep(0.05)
    assert taken is not None
    assert not await dead.refresh(held)  # the old holder learns it lost the lease


async def test_a_lease_is_released_after_a_refresh_whose_answer_was_lost(nc):
    """Regression (chaos: SIGKILL of the llm-proxy): a turn failing while its keep-alive refreshed
    the lease cancelled the refresh after its write was sent; the release then used the old revision,
    failed, and the agent's next delivery waited out the lease TTL (10 s) for its own replica."""
    kv = await nc.jetstream().key_value(subjects.KV_LEASES)
    a, b = LeaseManager(kv, "A", 30), LeaseManager(kv, "B", 30)
    key = f"t1.{ids.new_id('agent')}"
    lease = await a.acquire(key)
    assert lease is not None
    await kv.update(key, a._value(), last=lease.revision)  # the refresh's write; its answer never read
    await a.release(lease)
    assert await b.acquire(key) is not None  # released at once, not after 30 s
    await a.release(lease)  # stale now: B holds the lease, and keeps it
    assert await a.acquire(key) is None
