"""One contract for every search backend: embedded always; Elasticsearch through noida-db (or a real
cluster when MNEMO_TEST_ES_URL is set), in each of its ways of fusing words and meaning (linear
retriever, query + knn with boosts, client-side; see tests/fixtures_search.py)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mnemo.memory.search import DimensionMismatch, PassageDoc, PassageFilter, RecallDoc, SearchBackend
from tests.fixtures_search import EVERY_WAY, es_linear_url, es_url, minilm, open_backend  # noqa: F401

T0 = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture(params=EVERY_WAY, name="search_backend")
async def contract_backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[object]:
    async with open_backend(request, tmp_path) as backend:
        yield backend

Embed = Callable[[list[str]], list[list[float]]]


def msg(i: int, text: str, *, tenant: str = "t1", agent: str = "a1", role: str = "user",
        when: datetime | None = None, vector: list[float] | None = None) -> RecallDoc:
    return RecallDoc(id=f"m{i}", tenant_id=tenant, agent_id=agent, role=role, text=text,
                     created_at=when or T0 + timedelta(hours=i), vector=vector)


def passage(pid: str, text: str, *, tenant: str = "t1", agent: str = "a1", tags: list[str] | None = None,
            vector: list[float] | None = None, when: datetime | None = None) -> PassageDoc:
    return PassageDoc(id=pid, tenant_id=tenant, agent_id=agent, text=text, created_at=when or T0,
                      tags=tags or [], vector=vector)


CHAT = [
    ("user", "Good morning! I just got back from the farmers market."),
    ("assistant", "Morning! Did you find anything nice?"),
    ("user", "Yes, fresh strawberries and a loaf of sourdough bread."),
    ("assistant", "Sounds delicious. Any plans for the weekend?"),
    ("user", "We adopted a beagle named Biscuit last week, so lots of walks."),
    ("assistant", "Congratulations on the new family member!"),
    ("user", "My sister Ana is visiting from Lisbon in June."),
    ("assistant", "That will be lovely, I hope the weather is good."),
    ("user", "I have been learning to play the cello for two years now."),
    ("assistant", "Impressive dedication to music."),
]


async def load_chat(backend: SearchBackend, embed: Embed | None = None, agent: str = "a1",
                    tenant: str = "t1") -> list[RecallDoc]:
    vectors = embed([t for _, t in CHAT]) if embed else [None] * len(CHAT)
    docs = [msg(i, text, role=role, vector=v, agent=agent, tenant=tenant)
            for i, ((role, text), v) in enumerate(zip(CHAT, vectors, strict=True))]
    await backend.index_messages(docs)
    return docs


# -- recall -------------------------------------------------------------------------------------------

async def test_recall_empty_query_lists_newest_first_with_total(search_backend: SearchBackend) -> None:
    await load_chat(search_backend)
    page = await search_backend.search_messages("t1", "a1", limit=3)
    assert page.total == len(CHAT)
    assert [h.doc.id for h in page.hits] == ["m9", "m8", "m7"]
    assert page.hits[0].doc.text == CHAT[9][1] and page.hits[0].doc.role == "assistant"
    assert page.hits[0].doc.created_at == T0 + timedelta(hours=9)


async def test_recall_text_query_ranks_the_relevant_message_first(search_backend: SearchBackend) -> None:
    await load_chat(search_backend)
    page = await search_backend.search_messages("t1", "a1", query="what is the beagle called?")
    assert page.hits and page.hits[0].doc.id == "m4"
    page = await search_backend.search_messages("t1", "a1", query="cello")
    assert page.hits[0].doc.id == "m8"
    assert page.total >= 1


async def test_recall_meaning_carries_where_words_do_not(search_backend: SearchBackend, minilm: Embed) -> None:
    await load_chat(search_backend, minilm)
    distractor = "I called the plumber about the leaking sink."  # shares a word, not the meaning
    await search_backend.index_messages([msg(20, distractor, vector=minilm([distractor])[0])])
    question = "what's my dog called?"  # no word in common with "adopted a beagle named Biscuit"
    page = await search_backend.search_messages("t1", "a1", query=question, vector=minilm([question])[0], limit=3)
    assert "m4" in [h.doc.id for h in page.hits]
    question = "which instrument do I practise?"
    page = await search_backend.search_messages("t1", "a1", query=question, vector=minilm([question])[0], limit=3)
    assert "m8" in [h.doc.id for h in page.hits]


async def test_recall_words_alone_still_work_without_vectors(search_backend: SearchBackend, minilm: Embed) -> None:
    await load_chat(search_backend, minilm)
    page = await search_backend.search_messages("t1", "a1", query="sourdough")
    assert [h.doc.id for h in page.hits][:1] == ["m2"]
    # a message is also found through its neighbouring turns (m1 and m3 surround the match)
    assert page.total == 3 and sorted(h.doc.id for h in page.hits) == ["m1", "m2", "m3"]


async def test_recall_filters_by_date_range_and_role(search_backend: SearchBackend) -> None:
    await load_chat(search_backend)
    page = await search_backend.search_messages("t1", "a1", start=T0 + timedelta(hours=2),
                                                end=T0 + timedelta(hours=5), limit=10)
    assert sorted(h.doc.id for h in page.hits) == ["m2", "m3", "m4", "m5"]
    assert page.total == 4
    page = await search_backend.search_messages("t1", "a1", role="assistant", limit=10)
    assert page.total == 5 and all(h.doc.role == "assistant" for h in page.hits)
    page = await search_backend.search_messages("t1", "a1", query="beagle walks", role="assistant")
    assert "m4" not in [h.doc.id for h in page.hits]
    page = await search_backend.search_messages("t1", "a1", query="beagle", end=T0 + timedelta(hours=2))
    assert page.total == 0 and page.hits == []


async def test_recall_pagination_and_totals(search_backend: SearchBackend) -> None:
    docs = [msg(i, f"note number {i} about the garden") for i in range(25)]
    await search_backend.index_messages(docs)
    seen: list[str] = []
    for offset in (0, 10, 20):
        page = await search_backend.search_messages("t1", "a1", query="garden", offset=offset, limit=10)
        assert page.total == 25
        seen += [h.doc.id for h in page.hits]
    assert len(seen) == 25 and len(set(seen)) == 25
    page = await search_backend.search_messages("t1", "a1", offset=20, limit=10)
    assert page.total == 25 and [h.doc.id for h in page.hits] == [f"m{i}" for i in range(4, -1, -1)]
    page = await search_backend.search_messages("t1", "a1", offset=30, limit=10)
    assert page.total == 25 and page.hits == []


async def test_recall_reindexing_is_idempotent(search_backend: SearchBackend, minilm: Embed) -> None:
    docs = await load_chat(search_backend, minilm)
    await search_backend.index_messages(docs)
    await search_backend.index_messages(docs[:3])
    assert await search_backend.count_messages("t1", "a1") == len(CHAT)
    page = await search_backend.search_messages("t1", "a1", query="strawberries")
    assert [h.doc.id for h in page.hits].count("m2") == 1 and page.total == 3
    changed = msg(2, "fresh raspberries instead", vector=minilm(["fresh raspberries instead"])[0])
    await search_backend.index_messages([changed])
    assert (await search_backend.search_messages("t1", "a1", query="strawberries")).total == 0
    assert (await search_backend.search_messages("t1", "a1", query="raspberries")).hits[0].doc.id == "m2"
    assert await search_backend.count_messages("t1", "a1") == len(CHAT)


async def test_recall_keeps_message_fields(search_backend: SearchBackend) -> None:
    doc = msg(1, "calling a tool", role="assistant")
    doc.turn_id = "turn-7"
    doc.extra = {"tool_calls": '[{"name": "send_message"}]'}
    await search_backend.index_messages([doc])
    (hit,) = (await search_backend.search_messages("t1", "a1")).hits
    assert hit.doc.turn_id == "turn-7" and hit.doc.extra == doc.extra and hit.doc.tenant_id == "t1"


# -- archival -----------------------------------------------------------------------------------------

async def test_archival_insert_is_searchable_at_once(search_backend: SearchBackend, minilm: Embed) -> None:
    texts = ["The user's favourite colour is teal.", "The user works as a nurse in Porto.",
             "Mitochondria are the powerhouse of the cell."]
    vecs = minilm(texts)
    await search_backend.insert_passages([passage(f"p{i}", t, vector=v) for i, (t, v) in
                                          enumerate(zip(texts, vecs, strict=True))])
    assert await search_backend.count_passages("t1", "a1") == 3
    q = "where does the user work?"
    page = await search_backend.search_passages("t1", "a1", query=q, vector=minilm([q])[0])
    assert page.hits[0].doc.id == "p1"
    q = "biology of cells"
    page = await search_backend.search_passages("t1", "a1", query=q, vector=minilm([q])[0])
    assert page.hits[0].doc.id == "p2"
    q = "which hue is my favorite?"  # meaning only: no word in common
    page = await search_backend.search_passages("t1", "a1", query=q, vector=minilm([q])[0])
    assert page.hits[0].doc.id == "p0"


async def test_archival_tags_must_all_match(search_backend: SearchBackend) -> None:
    await search_backend.insert_passages([
        passage("p1", "trip to Rome", tags=["travel", "2023"]),
        passage("p2", "trip to Oslo", tags=["travel"]),
        passage("p3", "tax return", tags=["finance", "2023"]),
    ])
    page = await search_backend.search_passages("t1", "a1", tags=["travel"])
    assert sorted(h.doc.id for h in page.hits) == ["p1", "p2"] and page.total == 2
    page = await search_backend.search_passages("t1", "a1", tags=["travel", "2023"])
    assert [h.doc.id for h in page.hits] == ["p1"] and page.total == 1
    page = await search_backend.search_passages("t1", "a1", query="trip", tags=["2023"])
    assert [h.doc.id for h in page.hits] == ["p1"] and page.total == 1
    assert page.hits[0].doc.tags == ["travel", "2023"]


async def test_archival_delete_count_and_idempotent_insert(search_backend: SearchBackend) -> None:
    docs = [passage(f"p{i}", f"fact {i} about volcanoes", when=T0 + timedelta(minutes=i)) for i in range(5)]
    await search_backend.insert_passages(docs)
    await search_backend.insert_passages(docs[:2])
    assert await search_backend.count_passages("t1", "a1") == 5
    assert await search_backend.delete_passage("t1", "a1", "p3") is True
    assert await search_backend.delete_passage("t1", "a1", "p3") is False
    assert await search_backend.delete_passage("t1", "a1", "nope") is False
    assert await search_backend.count_passages("t1", "a1") == 4
    page = await search_backend.search_passages("t1", "a1", query="volcanoes", limit=2)
    assert page.total == 4 and len(page.hits) == 2 and "p3" not in [h.doc.id for h in page.hits]
    page = await search_backend.search_passages("t1", "a1", limit=10)
    assert [h.doc.id for h in page.hits] == ["p4", "p2", "p1", "p0"]


async def test_archival_keeps_source_position_and_metadata(search_backend: SearchBackend) -> None:
    doc = passage("p1", "chapter one text")
    doc.source_id, doc.position, doc.metadata = "doc-9", 3, {"filename": "book.md"}
    await search_backend.insert_passages([doc])
    (hit,) = (await search_backend.search_passages("t1", "a1", query="chapter")).hits
    assert (hit.doc.source_id, hit.doc.position, hit.doc.metadata) == ("doc-9", 3, {"filename": "book.md"})


# -- isolation, deletion, dimensions -----------------------------------------------------------------

async def test_isolation_between_agents_and_tenants(search_backend: SearchBackend, minilm: Embed) -> None:
    await load_chat(search_backend, minilm, agent="a1", tenant="t1")
    await search_backend.index_messages([msg(0, "secret beagle plans", agent="a2", tenant="t1"),
                                         msg(0, "another tenant's beagle", agent="a1", tenant="t2")])
    await search_backend.insert_passages([passage("p1", "beagle fact", agent="a1", tenant="t1"),
                                          passage("p1", "other beagle fact", agent="a1", tenant="t2")])
    q = "beagle"
    page = await search_backend.search_messages("t1", "a2", query=q, vector=minilm([q])[0])
    assert [h.doc.text for h in page.hits] == ["secret beagle plans"] and page.total == 1
    page = await search_backend.search_messages("t2", "a1", query=q, vector=minilm([q])[0])
    assert [h.doc.text for h in page.hits] == ["another tenant's beagle"]
    page = await search_backend.search_messages("t1", "a1", query=q, vector=minilm([q])[0], limit=20)
    assert all(h.doc.tenant_id == "t1" and h.doc.agent_id == "a1" for h in page.hits)
    assert "m0" not in [h.doc.id for h in page.hits if "secret" in h.doc.text]
    assert await search_backend.count_messages("t1", "a2") == 1
    assert await search_backend.count_messages("t3", "a1") == 0
    assert (await search_backend.search_messages("t3", "a1", query=q)).total == 0
    assert (await search_backend.search_passages("t2", "a1", query=q)).hits[0].doc.text == "other beagle fact"
    assert await search_backend.delete_passage("t2", "a1", "p1") is True
    assert await search_backend.count_passages("t1", "a1") == 1


async def test_delete_agent_removes_its_recall_and_archival_only(search_backend: SearchBackend) -> None:
    await load_chat(search_backend, agent="a1")
    await load_chat(search_backend, agent="a2")
    await search_backend.insert_passages([passage("p1", "x", agent="a1"), passage("p1", "x", agent="a2")])
    await search_backend.delete_agent("t1", "a1")
    assert await search_backend.count_messages("t1", "a1") == 0
    assert await search_backend.count_passages("t1", "a1") == 0
    assert (await search_backend.search_messages("t1", "a1", query="beagle")).total == 0
    assert await search_backend.count_messages("t1", "a2") == len(CHAT)
    assert await search_backend.count_passages("t1", "a2") == 1
    await load_chat(search_backend, agent="a1")  # the agent id can be reused afterwards
    assert await search_backend.count_messages("t1", "a1") == len(CHAT)


async def test_dimension_mismatch_is_refused(search_backend: SearchBackend) -> None:
    await search_backend.insert_passages([passage("p1", "three dims", vector=[1.0, 0.0, 0.0])])
    with pytest.raises(DimensionMismatch):
        await search_backend.insert_passages([passage("p2", "four dims", vector=[1.0, 0.0, 0.0, 0.0])])
    with pytest.raises(DimensionMismatch):
        await search_backend.search_passages("t1", "a1", query="dims", vector=[1.0, 0.0])
    assert await search_backend.count_passages("t1", "a1") == 1
    await search_backend.index_messages([msg(1, "hello", vector=[0.0, 1.0])])
    with pytest.raises(DimensionMismatch):
        await search_backend.index_messages([msg(2, "mixed", vector=[0.0, 1.0]), msg(3, "x", vector=[1.0, 0, 0])])
    assert await search_backend.count_messages("t1", "a1") == 1
    # another agent may use another dimension
    await search_backend.insert_passages([passage("p1", "four dims", agent="a2", vector=[1.0, 0.0, 0.0, 0.0])])
    assert await search_backend.count_passages("t1", "a2") == 1


async def test_concurrent_writers_and_readers(search_backend: SearchBackend) -> None:
    async def writer(agent: str) -> None:
        for i in range(0, 40, 8):
            await search_backend.index_messages([msg(j, f"entry {j} of {agent}", agent=agent) for j in range(i, i + 8)])

    async def reader() -> None:
        for _ in range(10):
            await search_backend.search_messages("t1", "a1", query="entry")

    await asyncio.gather(writer("a1"), writer("a2"), writer("a1"), reader(), reader())
    assert await search_backend.count_messages("t1", "a1") == 40
    assert await search_backend.count_messages("t1", "a2") == 40


# -- archival hygiene: expiry, bulk delete, similarity (deduplication) ---------------------------------

async def test_expired_passages_are_hidden_at_once_and_purged_later(search_backend: SearchBackend,
                                                                   minilm: Embed) -> None:
    now = datetime.now(UTC)
    texts = ["The user's locker code is 4512.", "The user parks on level three.", "The user likes jazz."]
    vecs = minilm(texts)
    docs = [passage(f"p{i}", t, vector=v, when=now - timedelta(minutes=5 - i)) for i, (t, v) in
            enumerate(zip(texts, vecs, strict=True))]
    docs[0].expires_at = now - timedelta(seconds=1)        # already past
    docs[1].expires_at = now + timedelta(hours=1)          # later
    await search_backend.insert_passages(docs)
    await search_backend.insert_passages([passage("q1", "The user's locker code is 4512.", agent="a2",
                                                  vector=vecs[0])])
    assert await search_backend.count_passages("t1", "a1") == 2
    q = "what is the locker code?"
    for query, vector in ((q, minilm([q])[0]), (q, None), ("", None)):
        page = await search_backend.search_passages("t1", "a1", query=query, vector=vector, limit=10)
        assert "p0" not in [h.doc.id for h in page.hits], query
        assert page.total <= 2
    assert await search_backend.get_passages("t1", "a1", ["p0", "p1"]) != []
    assert [d.id for d in await search_backend.get_passages("t1", "a1", ["p0", "p1"])] == ["p1"]
    (similar,) = await search_backend.similar_passages("t1", "a1", [vecs[0]], min_similarity=0.9)
    assert similar == []
    kept = (await search_backend.get_passages("t1", "a1", ["p1"]))[0]
    assert kept.expires_at is not None and abs((kept.expires_at - docs[1].expires_at).total_seconds()) < 1
    # the purge deletes what expired (of every agent), nothing else
    assert await search_backend.purge_expired(now) == 1
    assert await search_backend.purge_expired(now) == 0
    assert await search_backend.count_passages("t1", "a1") == 2
    assert await search_backend.count_passages("t1", "a2") == 1
    assert await search_backend.purge_expired(now + timedelta(hours=2)) == 1
    assert await search_backend.count_passages("t1", "a1") == 1
    assert [h.doc.id for h in (await search_backend.search_passages("t1", "a1")).hits] == ["p2"]


async def test_bulk_delete_by_tags_dates_source_and_ids_counts(search_backend: SearchBackend) -> None:
    docs = [passage("trip-rome", "trip to Rome", tags=["travel", "2023"], when=T0),
            passage("trip-oslo", "trip to Oslo", tags=["travel"], when=T0 + timedelta(days=10)),
            passage("tax", "tax return", tags=["finance", "2023"], when=T0 + timedelta(days=20))]
    for i in range(4):
        d = passage(f"ch{i}", f"chapter {i} of the manual", when=T0 + timedelta(days=30, minutes=i))
        d.source_id = "doc-manual"
        docs.append(d)
    await search_backend.insert_passages(docs)
    await search_backend.insert_passages([passage("trip-rome", "trip to Rome", tags=["travel", "2023"], agent="a2")])
    assert await search_backend.delete_passages("t1", "a1", PassageFilter()) == 0   # no filter: nothing
    assert await search_backend.delete_passages("t1", "a1", PassageFilter(source_id="doc-manual")) == 4
    assert await search_backend.delete_passages("t1", "a1", PassageFilter(source_id="doc-manual")) == 0
    assert await search_backend.delete_passages("t1", "a1", PassageFilter(tags=["travel", "2023"])) == 1
    assert await search_backend.count_passages("t1", "a2") == 1   # the other agent's copy stays
    window = PassageFilter(start=T0 + timedelta(days=5), end=T0 + timedelta(days=15))
    assert await search_backend.delete_passages("t1", "a1", window) == 1
    assert [h.doc.id for h in (await search_backend.search_passages("t1", "a1")).hits] == ["tax"]
    assert await search_backend.delete_passages("t1", "a1", PassageFilter(ids=["tax", "nope"], tags=["travel"])) == 0
    assert await search_backend.delete_passages("t1", "a1", PassageFilter(ids=["tax", "nope"])) == 1
    assert await search_backend.count_passages("t1", "a1") == 0
    assert (await search_backend.search_passages("t1", "a1", query="trip")).total == 0


async def test_similar_passages_by_cosine_and_vectors_of_the_newest(search_backend: SearchBackend,
                                                                   minilm: Embed) -> None:
    texts = ["The user's dog is a beagle called Biscuit.", "Mitochondria are the powerhouse of the cell.",
             "The user's favourite colour is teal."]
    vecs = minilm(texts)
    assert await search_backend.similar_passages("t1", "a1", [vecs[0]], min_similarity=0.5) == [[]]  # no index yet
    await search_backend.insert_passages([passage(f"p{i}", t, vector=v, when=T0 + timedelta(minutes=i))
                                          for i, (t, v) in enumerate(zip(texts, vecs, strict=True))])
    near = "The user's dog is a beagle named Biscuit."
    far = "Quarterly tax filing deadlines."
    found = await search_backend.similar_passages("t1", "a1", minilm([near, far, texts[2]]), min_similarity=0.9)
    assert [h.doc.id for h in found[0]] == ["p0"] and found[0][0].score > 0.9 and found[0][0].doc.text == texts[0]
    assert found[1] == []
    assert [h.doc.id for h in found[2]][:1] == ["p2"] and found[2][0].score > 0.99
    assert (await search_backend.similar_passages("t1", "a2", [vecs[0]], min_similarity=0.5)) == [[]]
    newest = await search_backend.passage_vectors("t1", "a1", limit=2)
    assert [d.id for d in newest] == ["p2", "p1"]
    assert newest[0].vector is not None and len(newest[0].vector) == len(vecs[0])
