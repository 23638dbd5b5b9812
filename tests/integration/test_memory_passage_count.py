"""The embedded backend's cached passage count (read on every GetContext) follows inserts, deletes
and agent / tenant deletion made through it."""

from __future__ import annotations

from datetime import UTC, datetime

from mnemo.memory.search.base import PassageDoc
from mnemo.memory.search.embedded import EmbeddedBackend


def _docs(agent: str, ids: list[str], tenant: str = "t1") -> list[PassageDoc]:
    now = datetime.now(UTC)
    return [PassageDoc(id=i, tenant_id=tenant, agent_id=agent, text=f"passage {i} about owls", created_at=now)
            for i in ids]


async def test_cached_count_follows_every_change(tmp_path) -> None:
    backend = EmbeddedBackend(tmp_path / "index")
    await backend.start()
    try:
        assert await backend.count_passages("t1", "a1") == 0
        await backend.insert_passages(_docs("a1", ["p1", "p2"]))
        assert await backend.count_passages("t1", "a1") == 2
        assert await backend.count_passages("t1", "a1") == 2          # served from the cache
        await backend.insert_passages(_docs("a1", ["p3"]) + _docs("a2", ["q1"]))
        assert await backend.count_passages("t1", "a1") == 3
        assert await backend.count_passages("t1", "a2") == 1
        assert await backend.delete_passage("t1", "a1", "p1")
        assert await backend.count_passages("t1", "a1") == 2
        assert not await backend.delete_passage("t1", "a1", "missing")
        assert await backend.count_passages("t1", "a1") == 2
        await backend.delete_agent("t1", "a2")
        assert await backend.count_passages("t1", "a2") == 0
        await backend.insert_passages(_docs("a9", ["z1"], tenant="t2"))
        assert await backend.count_passages("t2", "a9") == 1
        await backend.delete_tenant("t1")
        assert await backend.count_passages("t1", "a1") == 0
        assert await backend.count_passages("t2", "a9") == 1          # other tenants untouched
    finally:
        await backend.close()
