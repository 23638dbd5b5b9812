"""The Elasticsearch search backend (official async client, elasticsearch 9.x).

Layout: index templates with explicit, strict mappings (elastic_docs.py); one recall and one archival
index per vector dimension (`<prefix>-recall-d384`, `<prefix>-archival-d384`; `-d0` holds documents
written before an agent has any vector), so a dense_vector field never mixes dimensions. The
dimension of each agent's recall and archival vectors is recorded in `<prefix>-meta` on first use
(elastic_dims.py); a write or query with another dimension raises DimensionMismatch before reaching
the index.

Every query carries term filters on tenant_id AND agent_id. Hybrid search fuses a BM25 query and a
filtered kNN query in one request with a `linear` retriever where the cluster has it, else client-side
(elastic_hybrid.py, `MNEMO_ELASTICSEARCH_HYBRID`). Writes are bulk
(helpers.async_bulk) with refresh=wait_for, so a write is searchable when the call returns.
Transient errors are retried by the client (retry_on_timeout, retry_on_status) and, for start-up,
by tenacity.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

from elastic_transport import HttpxAsyncHttpNode
from elasticsearch import AsyncElasticsearch, helpers
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from mnemo.memory.search import elastic_archival as hygiene
from mnemo.memory.search.base import Hit, Page, PassageDoc, PassageFilter, RecallDoc
from mnemo.memory.search.elastic_archival import EXPIRY_FIELD, live_filter
from mnemo.memory.search.elastic_dims import KINDS, AgentDims
from mnemo.memory.search.elastic_docs import (
    ARCHIVAL_FIELDS,
    META_FIELDS,
    RECALL_FIELDS,
    doc_key,
    iso,
    passage_doc,
    passage_source,
    recall_doc,
    recall_source,
)
from mnemo.memory.search.elastic_hybrid import HybridSearch, Mode, Request
from mnemo.memory.search.text import DEFAULT_MIN_SIMILARITY, MEANING_WEIGHT, MESSAGE_WEIGHTS, neighbour_context
from mnemo.memory.search.vectors import normalize

# Messages read on each side of a written span to re-derive neighbour contexts (context reaches 1).
CONTEXT_REACH = 2

Doc = TypeVar("Doc", RecallDoc, PassageDoc)
Found = tuple[list[tuple[dict[str, Any], float]], int]


def _by_agent(docs: list[Doc]) -> dict[tuple[str, str], list[Doc]]:
    """`docs` grouped by (tenant_id, agent_id), in order."""
    groups: dict[tuple[str, str], list[Doc]] = {}
    for d in docs:
        groups.setdefault((d.tenant_id, d.agent_id), []).append(d)
    return groups


class ElasticsearchBackend:
    """SearchBackend on an Elasticsearch cluster (or an ES-API compatible server)."""

    def __init__(self, url: str, prefix: str = "mnemo", *, min_similarity: float = DEFAULT_MIN_SIMILARITY,
                 client: AsyncElasticsearch | None = None, meaning_weight: float = MEANING_WEIGHT,
                 hybrid: Mode = "linear") -> None:
        self.url = url
        self.prefix = prefix
        self.min_similarity = min_similarity
        self.meaning_weight = meaning_weight
        self.es = client or AsyncElasticsearch(
            url, node_class=HttpxAsyncHttpNode, request_timeout=30, retry_on_timeout=True, max_retries=3,
            retry_on_status=(429, 502, 503, 504))
        self.dims = AgentDims(self.es, self.meta_index)
        self.hybrid = HybridSearch(self.es, hybrid)
        self._indices: set[str] = set()

    # -- set-up -----------------------------------------------------------------------------------

    @property
    def meta_index(self) -> str:
        return f"{self.prefix}-meta"

    def _index(self, kind: str, dim: int | None) -> str:
        return f"{self.prefix}-{kind}-d{dim or 0}"

    def _pattern(self, kind: str) -> str:
        return f"{self.prefix}-{kind}-d*"

    async def start(self) -> None:
        async for attempt in AsyncRetrying(stop=stop_after_delay(30), wait=wait_exponential(max=2),
                                           retry=retry_if_exception_type(Exception), reraise=True):
            with attempt:
                await self.es.info()
        for kind, fields in (("recall", RECALL_FIELDS), ("archival", ARCHIVAL_FIELDS)):
            await self.es.indices.put_index_template(
                name=f"{self.prefix}-{kind}", index_patterns=[self._pattern(kind)],
                template={"settings": {"number_of_shards": 1},
                          "mappings": {"dynamic": "strict", "properties": fields}})
        await self._ensure_index(self.meta_index, {"dynamic": "strict", "properties": META_FIELDS})
        # Archival indices created before passages could expire get the field (an additive change).
        await self.es.indices.put_mapping(index=self._pattern("archival"), properties=EXPIRY_FIELD,
                                          ignore_unavailable=True, allow_no_indices=True)

    async def close(self) -> None:
        await self.es.close()

    async def _ensure_index(self, name: str, mappings: dict[str, Any] | None = None,
                            dim: int | None = None) -> None:
        if name in self._indices:
            return
        if not await self.es.indices.exists(index=name):
            body: dict[str, Any] = {}
            if mappings is not None:
                body["mappings"] = mappings
            elif dim:
                body["mappings"] = {"properties": {"vector": {
                    "type": "dense_vector", "dims": dim, "index": True, "similarity": "cosine"}}}
            try:
                await self.es.indices.create(index=name, **body)
            except Exception as exc:  # created concurrently by another writer
                if "resource_already_exists" not in str(exc):
                    raise
        self._indices.add(name)

    # -- shared by recall and archival ------------------------------------------------------------

    @staticmethod
    def _scope(tenant_id: str, agent_id: str) -> list[dict[str, Any]]:
        return [{"term": {"tenant_id": tenant_id}}, {"term": {"agent_id": agent_id}}]

    async def _put(self, kind: str, tenant_id: str, agent_id: str, docs: list[Doc],
                   source: Callable[[Doc], dict[str, Any]]) -> None:
        """Write one agent's `docs` (`source` gives each one's `_source`) with their vectors, into the
        index of the agent's dimension, keeping one copy per id."""
        vecs = [None if d.vector is None else normalize(d.vector) for d in docs]
        dim = await self.dims.claim(tenant_id, agent_id, kind, {len(v) for v in vecs if v is not None})
        index = self._index(kind, dim)
        await self._ensure_index(index, dim=dim)
        actions: list[dict[str, Any]] = []
        for d, v in zip(docs, vecs, strict=True):
            src = source(d)
            if v is not None:
                src["vector"] = v.tolist()
            actions.append({"_op_type": "index", "_index": index, "_id": doc_key(tenant_id, agent_id, d.id),
                            "_source": src})
        if actions:
            await helpers.async_bulk(self.es, actions, refresh="wait_for", max_retries=3)
        await self._remove_elsewhere(kind, index, [a["_id"] for a in actions])

    async def _remove_elsewhere(self, kind: str, keep_index: str, keys: list[str]) -> None:
        """Keep one copy per id: a doc re-written with another dimension leaves its old index."""
        await self.es.delete_by_query(
            index=self._pattern(kind), refresh=True, conflicts="proceed",
            query={"bool": {"filter": [{"ids": {"values": keys}}],
                            "must_not": [{"term": {"_index": keep_index}}]}},
            ignore_unavailable=True, allow_no_indices=True)

    async def _find(self, kind: str, tenant_id: str, agent_id: str, filters: list[dict[str, Any]], query: str,
                    fields: list[str], vector: list[float] | None, offset: int, limit: int) -> Found:
        """Hybrid search when `query` has text, else the newest documents."""
        offset, limit = max(0, offset), max(0, limit)
        if not query.strip():
            return await self._newest(kind, filters, offset, limit)
        dim = await self.dims.get(tenant_id, agent_id, kind)
        # The agent's documents are in the index of its dimension and in that of documents without vectors.
        native = f"{self._index(kind, None)},{self._index(kind, dim)}" if dim else self._pattern(kind)
        return await self.hybrid.search(Request(
            words_index=self._pattern(kind), vectors_index=self._index(kind, dim), native_index=native, dim=dim,
            filters=filters, query=query, fields=fields, vector=vector, min_similarity=self.min_similarity,
            offset=offset, limit=limit, meaning_weight=self.meaning_weight))

    async def _newest(self, kind: str, filters: list[dict[str, Any]], offset: int, limit: int) -> Found:
        res = await self.es.search(
            index=self._pattern(kind), query={"bool": {"filter": filters}},
            sort=[{"created_at": "desc"}, {"doc_id": "desc"}], from_=offset, size=limit,
            track_total_hits=True, ignore_unavailable=True, allow_no_indices=True)
        return [(h["_source"], 0.0) for h in res["hits"]["hits"]], int(res["hits"]["total"]["value"])

    async def _count(self, kind: str, tenant_id: str, agent_id: str,
                     extra: list[dict[str, Any]] | None = None) -> int:
        res = await self.es.count(index=self._pattern(kind), query={"bool": {"filter": [
            *self._scope(tenant_id, agent_id), *(extra or [])]}}, ignore_unavailable=True, allow_no_indices=True)
        return int(res["count"])

    # -- recall -----------------------------------------------------------------------------------

    async def index_messages(self, docs: list[RecallDoc]) -> None:
        for (tenant_id, agent_id), group in _by_agent(docs).items():
            await self._index_agent_messages(tenant_id, agent_id, group)

    async def _index_agent_messages(self, tenant_id: str, agent_id: str, group: list[RecallDoc]) -> None:
        ordered = sorted(group, key=lambda d: (d.created_at, d.id))
        texts = [d.text for d in ordered]
        contexts = {d.id: d.context or neighbour_context(texts, i) for i, d in enumerate(ordered)}
        await self._put("recall", tenant_id, agent_id, group, lambda d: recall_source(d, contexts[d.id]))
        if any(not d.context for d in group):
            await self._refresh_contexts(tenant_id, agent_id, ordered[0].created_at, ordered[-1].created_at)

    async def _refresh_contexts(self, tenant_id: str, agent_id: str, first: datetime, last: datetime) -> None:
        """Re-derive the neighbour context of the messages around a written time span.

        A new message changes the context of its neighbours, which may have been indexed in earlier
        batches; the span plus CONTEXT_REACH messages on each side is read back and rewritten where
        the derived context changed.
        """
        scope = self._scope(tenant_id, agent_id)
        sort_asc = [{"created_at": "asc"}, {"doc_id": "asc"}]
        sort_desc = [{"created_at": "desc"}, {"doc_id": "desc"}]
        common: dict[str, Any] = {"index": self._pattern("recall"), "ignore_unavailable": True,
                                  "allow_no_indices": True, "source_excludes": ["vector"]}
        span = await self.es.search(**common, query={"bool": {"filter": [*scope, {"range": {"created_at": {
            "gte": iso(first), "lte": iso(last)}}}]}}, sort=sort_asc, size=10_000)
        before = await self.es.search(**common, query={"bool": {"filter": [*scope, {"range": {"created_at": {
            "lt": iso(first)}}}]}}, sort=sort_desc, size=CONTEXT_REACH)
        after = await self.es.search(**common, query={"bool": {"filter": [*scope, {"range": {"created_at": {
            "gt": iso(last)}}}]}}, sort=sort_asc, size=CONTEXT_REACH)
        hits = [*reversed(before["hits"]["hits"]), *span["hits"]["hits"], *after["hits"]["hits"]]
        texts = [h["_source"]["text"] for h in hits]
        updates = []
        for i, h in enumerate(hits):
            src = h["_source"]
            if not src.get("auto_context"):
                continue
            context = neighbour_context(texts, i)
            if context != src.get("context"):
                updates.append({"_op_type": "update", "_index": h["_index"], "_id": h["_id"],
                                "doc": {"context": context}})
        if updates:
            await helpers.async_bulk(self.es, updates, refresh="wait_for", max_retries=3)

    async def search_messages(self, tenant_id: str, agent_id: str, *, query: str = "",
                              vector: list[float] | None = None, start: datetime | None = None,
                              end: datetime | None = None, role: str | None = None,
                              offset: int = 0, limit: int = 10) -> Page[RecallDoc]:
        filters = self._scope(tenant_id, agent_id)
        if start is not None or end is not None:
            rng: dict[str, str] = {}
            if start is not None:
                rng["gte"] = iso(start)
            if end is not None:
                rng["lte"] = iso(end)
            filters.append({"range": {"created_at": rng}})
        if role:
            filters.append({"term": {"role": role}})
        w = MESSAGE_WEIGHTS
        fields = [f"text^{w[0]}", f"context^{w[1]}", f"dates^{w[2]}"]
        found, total = await self._find("recall", tenant_id, agent_id, filters, query, fields, vector, offset, limit)
        return Page(hits=[Hit(doc=recall_doc(s), score=sc) for s, sc in found], total=total)

    async def count_messages(self, tenant_id: str, agent_id: str) -> int:
        return await self._count("recall", tenant_id, agent_id)

    # -- archival ---------------------------------------------------------------------------------

    async def insert_passages(self, docs: list[PassageDoc]) -> None:
        for (tenant_id, agent_id), group in _by_agent(docs).items():
            await self._put("archival", tenant_id, agent_id, group, passage_source)

    async def search_passages(self, tenant_id: str, agent_id: str, *, query: str = "",
                              vector: list[float] | None = None, tags: list[str] | None = None,
                              offset: int = 0, limit: int = 10) -> Page[PassageDoc]:
        filters = [*self._scope(tenant_id, agent_id), live_filter(datetime.now(UTC))]
        for tag in sorted(set(tags or [])):
            filters.append({"term": {"tags": tag}})
        found, total = await self._find("archival", tenant_id, agent_id, filters, query, ["text"], vector,
                                        offset, limit)
        return Page(hits=[Hit(doc=passage_doc(s), score=sc) for s, sc in found], total=total)

    async def delete_passage(self, tenant_id: str, agent_id: str, passage_id: str) -> bool:
        res = await self.es.delete_by_query(
            index=self._pattern("archival"), refresh=True, conflicts="proceed", ignore_unavailable=True,
            allow_no_indices=True, query={"bool": {"filter": [
                *self._scope(tenant_id, agent_id), {"ids": {"values": [doc_key(tenant_id, agent_id, passage_id)]}}]}})
        return int(res.get("deleted", 0)) > 0

    async def count_passages(self, tenant_id: str, agent_id: str) -> int:
        return await self._count("archival", tenant_id, agent_id, [live_filter(datetime.now(UTC))])

    # -- archival hygiene (elastic_archival.py) ---------------------------------------------------

    async def get_passages(self, tenant_id: str, agent_id: str, ids: list[str]) -> list[PassageDoc]:
        return await hygiene.get_passages(self, tenant_id, agent_id, ids)

    async def similar_passages(self, tenant_id: str, agent_id: str, vectors: list[list[float]], *,
                               min_similarity: float, limit: int = 3) -> list[list[Hit[PassageDoc]]]:
        return await hygiene.similar_passages(self, tenant_id, agent_id, vectors, min_similarity, limit)

    async def passage_vectors(self, tenant_id: str, agent_id: str, *, limit: int) -> list[PassageDoc]:
        return await hygiene.passage_vectors(self, tenant_id, agent_id, limit)

    async def delete_passages(self, tenant_id: str, agent_id: str, where: PassageFilter) -> int:
        return await hygiene.delete_passages(self, tenant_id, agent_id, where)

    async def purge_expired(self, now: datetime) -> int:
        return await hygiene.purge_expired(self, now)

    # -- whole agent ------------------------------------------------------------------------------

    async def delete_agent(self, tenant_id: str, agent_id: str) -> None:
        scope = {"bool": {"filter": self._scope(tenant_id, agent_id)}}
        indices = ",".join([*(self._pattern(kind) for kind in KINDS), self.meta_index])
        await self.es.delete_by_query(index=indices, query=scope, refresh=True, conflicts="proceed",
                                      ignore_unavailable=True, allow_no_indices=True)
        self.dims.forget(tenant_id, agent_id)
