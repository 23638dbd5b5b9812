"""Backend-specific behaviour: the embedded index on disk, the Elasticsearch mappings, factory and ways
of fusing words and meaning (one request natively, client-side when the cluster refuses)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from elastic_transport import ConnectionError as TransportConnectionError

from mnemo.common.config import Settings
from mnemo.memory.search import PassageDoc, RecallDoc, create_backend
from mnemo.memory.search.elastic import ElasticsearchBackend
from mnemo.memory.search.embedded import EmbeddedBackend
from tests.es_proxy import EsProxy
from tests.fixtures_search import drop_indices, es_url, real_cluster  # noqa: F401

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


async def test_embedded_shard_schema_is_applied_once_then_marked(tmp_path: Path) -> None:
    """A shard (new from the template, or migrated) is marked with the schema's version, so that
    opening it again runs no DDL; a shard marked otherwise is migrated again."""
    import sqlite3

    from mnemo.memory.search.shard import SCHEMA_VERSION

    backend = EmbeddedBackend(tmp_path / "index", max_open_shards=1)
    await backend.start()
    for agent in ("a", "b"):  # the second evicts (closes) the first
        await backend.insert_passages([PassageDoc(id=f"p-{agent}", tenant_id="t", agent_id=agent,
                                                  text="a passage", created_at=T0)])
    await backend.close()
    path = backend._path("t", "a")
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        db.execute("DROP INDEX passages_source")
        db.execute("PRAGMA user_version=1")  # as written by another version of the schema
    db.close()
    again = EmbeddedBackend(tmp_path / "index")
    await again.start()
    assert [h.doc.id for h in (await again.search_passages("t", "a")).hits] == ["p-a"]
    await again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    db.close()
    assert "passages_source" in indexes  # the DDL ran again


# -- Elasticsearch: ways of fusing words and meaning --------------------------------------------------

KAYAKS = ["we rented two kayaks at the lake", "the kayak trip was cancelled by rain", "a canoe is not a kayak",
          "lunch was pasta again", "the paddle broke on the river", "boats on the water all day",
          "kayaks need a roof rack", "my sister paddles every weekend"]
# Unit vectors in 3 dimensions, pointing near the query [1, 0, 0] for the water messages.
VECTORS = [[1.0, 0.1, 0.0], [0.9, 0.4, 0.0], [0.6, 0.8, 0.0], [0.0, 0.0, 1.0], [0.95, 0.0, 0.3],
           [0.8, 0.0, 0.6], [0.1, 1.0, 0.0], [0.7, 0.7, 0.1]]
CASES = [("kayaks", [1.0, 0.0, 0.0]), ("kayak paddle rain", [0.0, 1.0, 0.0]), ("pasta", [0.0, 0.0, 1.0]),
         ("nothing matches these words", [1.0, 0.0, 0.0])]


async def _load(backend: ElasticsearchBackend) -> None:
    """Two messages without vectors (index -d0), then six with (index -d3), and another agent's copy."""
    docs = [RecallDoc(id=f"m{i}", tenant_id="t", agent_id="a", role="user", text=text,
                      created_at=T0 + timedelta(minutes=i), vector=None if i < 2 else VECTORS[i])
            for i, text in enumerate(KAYAKS)]
    await backend.index_messages(docs[:2])
    await backend.index_messages(docs[2:])
    await backend.index_messages([RecallDoc(id="m0", tenant_id="t", agent_id="b", role="user", text=KAYAKS[0],
                                            created_at=T0, vector=VECTORS[0])])


@pytest.fixture
async def es_prefix(es_url: str) -> AsyncIterator[str]:
    """A fresh index prefix holding _load's messages; its indices are dropped afterwards."""
    prefix = f"mnemo-test-{uuid.uuid4().hex[:10]}"
    backend = ElasticsearchBackend(es_url, prefix, hybrid="client")
    await backend.start()
    try:
        await _load(backend)
        yield prefix
    finally:
        await drop_indices(backend)
        await backend.close()


async def _pages(backend: ElasticsearchBackend, limit: int = 50) -> list[tuple[set[str], int]]:
    out = []
    for query, vector in CASES:
        page = await backend.search_messages("t", "a", query=query, vector=vector, limit=limit)
        out.append(({h.doc.id for h in page.hits}, page.total))
    return out


@pytest.mark.es
@pytest.mark.parametrize("mode", ["linear", "boosts"])
async def test_elasticsearch_native_hybrid_is_one_request_with_the_same_matches(es_url: str, es_prefix: str,
                                                                              mode: str) -> None:
    """Words and meaning in one search request; the matches and `total` are those of client-side fusion
    (documents without vectors included). On noida-db, which has no linear retriever, tests/es_proxy.py
    answers it as Elasticsearch does; a real cluster answers it itself."""
    proxy = await EsProxy(es_url, linear=not real_cluster()).start()
    backend = ElasticsearchBackend(proxy.url, es_prefix, hybrid=mode)  # type: ignore[arg-type]
    client = ElasticsearchBackend(es_url, es_prefix, hybrid="client")
    try:
        proxy.searches.clear()
        page = await backend.search_messages("t", "a", query="kayaks", vector=[1.0, 0.0, 0.0], limit=3)
        if backend.hybrid.refused:
            pytest.skip(f"the cluster refuses the {mode} way")
        assert backend.hybrid.last_mode == mode
        (body,) = proxy.searches  # one request
        if mode == "linear":
            linear = body["retriever"]["linear"]
            assert [c["normalizer"] for c in linear["retrievers"]] == ["minmax", "minmax"]
            assert [c["weight"] for c in linear["retrievers"]] == pytest.approx([0.4, 0.6])
            assert "query" not in body and "knn" not in body
        else:
            assert body["query"]["bool"]["boost"] == pytest.approx(0.4) and body["knn"]["boost"] == pytest.approx(0.6)
        assert len(page.hits) == 3 and all(h.doc.agent_id == "a" for h in page.hits)
        assert [h.score for h in page.hits] == sorted((h.score for h in page.hits), reverse=True)
        assert await _pages(backend) == await _pages(client)
        assert len(proxy.searches) == 1 + len(CASES)
        # a page further down, and past the end
        deep = await backend.search_messages("t", "a", query="kayak", vector=[1.0, 0.0, 0.0], offset=2, limit=2)
        assert len(deep.hits) == 2 and deep.total == (await client.search_messages(
            "t", "a", query="kayak", vector=[1.0, 0.0, 0.0])).total
        past = await backend.search_messages("t", "a", query="kayak", vector=[1.0, 0.0, 0.0], offset=40, limit=5)
        assert past.hits == [] and past.total == deep.total
    finally:
        await backend.close()
        await client.close()
        await proxy.stop()


@pytest.mark.es
@pytest.mark.parametrize("refusal", ["unknown", "license"])
async def test_elasticsearch_refused_retriever_falls_back_to_client_fusion_once(
        es_url: str, es_prefix: str, refusal: str, caplog: pytest.LogCaptureFixture) -> None:
    """A cluster that refuses the linear retriever (400 unknown retriever before 8.18, 403 without the
    licence): the first search is answered client-side, the refusal is remembered and logged once."""
    proxy = await EsProxy(es_url, refuse=refusal).start()  # type: ignore[arg-type]
    backend = ElasticsearchBackend(proxy.url, es_prefix, hybrid="linear")
    client = ElasticsearchBackend(es_url, es_prefix, hybrid="client")
    caplog.set_level(logging.INFO, logger="mnemo.memory.search.elastic_hybrid")
    try:
        expected = await client.search_messages("t", "a", query="kayaks", vector=[1.0, 0.0, 0.0], limit=4)
        page = await backend.search_messages("t", "a", query="kayaks", vector=[1.0, 0.0, 0.0], limit=4)
        assert proxy.refused == 1 and backend.hybrid.last_mode == "client"
        assert backend.hybrid.effective_mode() == "client"
        assert [(h.doc.id, h.score) for h in page.hits] == [(h.doc.id, h.score) for h in expected.hits]
        assert page.total == expected.total
        assert await _pages(backend) == await _pages(client)
        assert proxy.refused == 1  # not asked again
        assert not any("retriever" in body for body in proxy.searches[1:])
        notes = [r for r in caplog.records if "refused the linear way" in r.getMessage()]
        assert len(notes) == 1 and notes[0].levelno == logging.INFO
        # another backend instance finds out for itself
        again = ElasticsearchBackend(proxy.url, es_prefix, hybrid="linear")
        await again.search_messages("t", "a", query="kayaks", vector=[1.0, 0.0, 0.0])
        assert proxy.refused == 2 and again.hybrid.effective_mode() == "client"
        await again.close()
    finally:
        await backend.close()
        await client.close()
        await proxy.stop()


@pytest.mark.es
async def test_elasticsearch_failed_shards_are_answered_client_side_without_giving_up_the_way(
        es_url: str, es_prefix: str) -> None:
    proxy = await EsProxy(es_url, refuse="shards").start()
    backend = ElasticsearchBackend(proxy.url, es_prefix, hybrid="linear")
    client = ElasticsearchBackend(es_url, es_prefix, hybrid="client")
    try:
        assert await _pages(backend) == await _pages(client)
        assert backend.hybrid.last_mode == "client" and backend.hybrid.refused == set()
        assert proxy.refused == len(CASES)  # asked every time
    finally:
        await backend.close()
        await client.close()
        await proxy.stop()


@pytest.mark.es
async def test_elasticsearch_error_that_is_no_refusal_is_not_remembered(es_url: str, es_prefix: str) -> None:
    """A native request that fails for another reason than a refusal (here: nothing answers) raises as a
    client-side search would, and the way is kept."""
    proxy = await EsProxy(es_url, refuse="unknown").start()
    backend = ElasticsearchBackend(proxy.url, es_prefix, hybrid="linear")
    try:
        await proxy.stop()  # nothing answers any more
        with pytest.raises(TransportConnectionError):
            await backend.search_messages("t", "a", query="kayaks", vector=[1.0, 0.0, 0.0])
        assert backend.hybrid.refused == set() and backend.hybrid.effective_mode() == "linear"
    finally:
        await backend.close()


def test_elasticsearch_hybrid_setting_reaches_the_backend(tmp_path: Path) -> None:
    from pydantic import ValidationError

    from mnemo.memory.search.elastic_hybrid import HybridSearch

    default = create_backend(Settings(home=tmp_path, search_backend="elasticsearch"))
    assert isinstance(default, ElasticsearchBackend) and default.hybrid.mode == Settings().elasticsearch_hybrid
    es = create_backend(Settings(home=tmp_path, search_backend="elasticsearch", elasticsearch_hybrid="boosts"))
    assert isinstance(es, ElasticsearchBackend) and es.hybrid.mode == "boosts"
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, elasticsearch_hybrid="rrf")
    with pytest.raises(ValueError):
        HybridSearch(es.es, "rrf")  # type: ignore[arg-type]
