"""natsutil.live_entries lists every live key of a KV bucket, never a partial list."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from nats.js.api import KeyValueConfig

from mnemo.common.natsutil import live_entries


async def test_many_concurrent_listings_each_see_every_live_key_and_no_deleted_one(nc: Any) -> None:
    # Regression: nats-py's watcher could put its end marker before values already on their way, so a
    # listing (ListAgents under load) saw none of them.
    kv = await nc.jetstream().create_key_value(KeyValueConfig(bucket=f"live-{uuid.uuid4().hex[:8]}"))
    for i in range(60):
        await kv.put(f"t.k{i:02d}", b"v")
    for i in range(0, 60, 6):
        await kv.delete(f"t.k{i:02d}")
    live = {f"t.k{i:02d}" for i in range(60) if i % 6}

    async def listing(meta_only: bool) -> set[str]:
        return {e.key async for e in live_entries(kv, "t.*", meta_only=meta_only)}

    results = await asyncio.gather(*(listing(i % 2 == 0) for i in range(40)))
    assert all(r == live for r in results), [len(r) for r in results]
    assert {e.key async for e in live_entries(kv, "nothing.*")} == set()
