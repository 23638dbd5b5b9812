"""Backend-specific behaviour: the embedded index on disk, the Elasticsearch mappings and factory."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mnemo.common.config import Settings
from mnemo.memory.search import PassageDoc, RecallDoc, create_backend
from mnemo.memory.search.elastic import ElasticsearchBackend
from mnemo.memory.search.embedded import EmbeddedBackend
from tests.fixtures_search import drop_indices, es_url  # noqa: F401

T0 = datetime(2024, 5, 1, tzinfo=UTC)


def test_create_backend_picks_by_settings(tmp_path: Path) -> None:
    embedded = create_backend(Settings(home=tmp_path))
    assert isinstance(embedded, EmbeddedBackend) and embedded.root == tmp_path / "index"
    es = create_backend(Settings(home=tmp_path, search_backend="elasticsearch",
                                 elasticsearch_url="http://127.0.0.1:1", elasticsearch_index_prefix="x"))
    assert isinstance(es, ElasticsearchBackend) and es.prefix == "x"


async def test_embedded_index_survives_a_restart(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "index")
    await backend.start()
    await backend.index_messages([RecallDoc(id=f"m{i}", tenant_id="t", agent_id="a", role="user",
                                            text=f"message {i} about kayaks", created_at=T0 + timedelta(minutes=i),
                                            vector=[1.0, float(i), 0.0]) for i in range(5)])
    await backend.insert_passages([PassageDoc(id="p", tenant_id="t", agent_id="a", text="kayak rental",
                                              created_at=T0, vector=[0.0, 1.0, 0.0], tags=["water"])])
    await backend.close()

    again = EmbeddedBackend(tmp_path / "index")
    await again.start()
    assert await again.count_messages("t", "a") == 5
    page = await again.search_messages("t", "a", query="kayaks", vector=[1.0, 4.0, 0.0])
    assert page.total == 5 and page.hits[0].doc.id == "m4"
    page = await again.search_passages("t", "a", query="boat", vector=[0.0, 1.0, 0.0], tags=["water"])
    assert [h.doc.id for h in page.hits] == ["p"]
    await again.close()


async def test_embedded_many_agents_with_few_open_files(tmp_path: Path) -> None:
    backend = EmbeddedBackend(tmp_path / "index", max_open_shards=2)
    await backend.start()

    async def work(agent: str) -> None:
        for i in range(3):
            await backend.index_messages([RecallDoc(id=f"m{i}", tenant_id="t", agent_id=agent, role="user",
                                                    text=f"{agent} says {i}", created_at=T0)])
            await backend.search_messages("t", agent, query="says")

    agents = [f"agent/{n}:x" for n in range(8)]  # ids with characters unsafe in file names
    await asyncio.gather(*(work(a) for a in agents))
    for a in agents:
        assert await backend.count_messages("t", a) == 3
    await backend.close()


@pytest.mark.es
async def test_elasticsearch_mappings_are_explicit(es_url: str) -> None:
    prefix = f"mnemo-test-{uuid.uuid4().hex[:10]}"
    backend = ElasticsearchBackend(es_url, prefix)
    await backend.start()
    try:
        await backend.insert_passages([PassageDoc(id="p", tenant_id="t", agent_id="a", text="x",
                                                  created_at=T0, vector=[1.0, 0.0, 0.0, 0.0])])
        await backend.index_messages([RecallDoc(id="m", tenant_id="t", agent_id="a", role="user", text="y",
                                                created_at=T0)])
        mapping = await backend.es.indices.get_mapping(index=f"{prefix}-archival-d4")
        props = mapping[f"{prefix}-archival-d4"]["mappings"]["properties"]
        assert props["tenant_id"]["type"] == "keyword" and props["agent_id"]["type"] == "keyword"
        assert props["tags"]["type"] == "keyword" and props["source_id"]["type"] == "keyword"
        assert props["created_at"]["type"] == "date" and props["text"]["type"] == "text"
        assert props["vector"]["type"] == "dense_vector" and props["vector"]["dims"] == 4
        assert props["vector"]["similarity"] == "cosine"
        mapping = await backend.es.indices.get_mapping(index=f"{prefix}-recall-d0")
        props = mapping[f"{prefix}-recall-d0"]["mappings"]["properties"]
        assert props["role"]["type"] == "keyword" and "vector" not in props
    finally:
        await drop_indices(backend)
        await backend.close()


async def test_embedded_shard_from_before_expiry_gets_the_column(tmp_path: Path) -> None:
    """A shard file written without `passages.expires_at` is migrated when opened; the purge registry
    (expiry.sqlite) survives a restart."""
    import sqlite3

    from mnemo.memory.search.schema import SCHEMA

    backend = EmbeddedBackend(tmp_path / "index")
    path = backend._path("t", "a")
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    old.executescript(SCHEMA.replace(", vec BLOB, expires_at REAL);", ", vec BLOB);"))
    old.execute("INSERT INTO passages(id, text, created_at, created_iso) VALUES ('old', 'an old passage', 0,"
                " '1970-01-01T00:00:00+00:00')")
    old.commit()
    old.close()
    await backend.start()
    soon = datetime.now(UTC) + timedelta(seconds=30)
    await backend.insert_passages([PassageDoc(id="new", tenant_id="t", agent_id="a", text="a passage that expires",
                                              created_at=T0, expires_at=soon)])
    assert await backend.count_passages("t", "a") == 2
    await backend.close()
    again = EmbeddedBackend(tmp_path / "index")
    await again.start()
    assert await again.purge_expired(soon + timedelta(seconds=1)) == 1
    assert [h.doc.id for h in (await again.search_passages("t", "a")).hits] == ["old"]
    await again.close()
