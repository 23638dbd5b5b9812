"""The Elasticsearch search backend (official async client, elasticsearch 9.x).

Layout: index templates with explicit, strict mappings; one recall and one archival index per vector
dimension (`<prefix>-recall-d384`, `<prefix>-archival-d384`; `-d0` holds documents written before an
agent has any vector), so a dense_vector field never mixes dimensions. The dimension of each agent's
recall and archival vectors is recorded in `<prefix>-meta` on first use; a write or query with
another dimension raises DimensionMismatch before reaching the index.

Every query carries term filters on tenant_id AND agent_id. Hybrid search runs a BM25 query and a
filtered kNN query and fuses them client-side with reciprocal rank fusion (works on any licence, and
on ES-API emulators without the `rrf` retriever). Writes are bulk (helpers.async_bulk) with
refresh=wait_for, so a write is searchable when the call returns. Transient errors are retried by the
client (retry_on_timeout, retry_on_status) and, for start-up, by tenacity.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

import numpy as np
from elasticsearch import AsyncElasticsearch, NotFoundError, helpers
from tenacity import AsyncRetrying, retry_if_exception_type, stop_after_delay, wait_exponential

from mnemo.memory.search.base import DimensionMismatch, Hit, Page, PassageDoc, RecallDoc
from mnemo.memory.search.shard import DEFAULT_MIN_SIMILARITY, MESSAGE_WEIGHTS, VECTOR_WEIGHT
from mnemo.memory.search import text as ranking
from mnemo.memory.search.text import date_words, neighbour_context, query_terms
from mnemo.memory.search.vectors import normalize

_COMMON = {
    "tenant_id": {"type": "keyword"},
    "agent_id": {"type": "keyword"},
    "doc_id": {"type": "keyword"},
    "text": {"type": "text", "analyzer": "standard"},
    "created_at": {"type": "date"},
}
RECALL_FIELDS = {
    **_COMMON,
    "role": {"type": "keyword"},
    "context": {"type": "text", "analyzer": "standard"},
    "auto_context": {"type": "boolean"},
    "dates": {"type": "text", "analyzer": "standard"},
    "turn_id": {"type": "keyword"},
    "extra": {"type": "object", "enabled": False},
}
ARCHIVAL_FIELDS = {
    **_COMMON,
    "tags": {"type": "keyword"},
    "source_id": {"type": "keyword"},
    "position": {"type": "integer"},
    "metadata": {"type": "object", "enabled": False},
}
META_FIELDS = {"tenant_id": {"type": "keyword"}, "agent_id": {"type": "keyword"},
               "kind": {"type": "keyword"}, "dim": {"type": "integer"}}


# Messages read on each side of a written span to re-derive neighbour contexts (context reaches 1).
CONTEXT_REACH = 2


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.astimezone(timezone.utc).isoformat()


def _parse(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def _doc_key(tenant_id: str, agent_id: str, doc_id: str) -> str:
    """The Elasticsearch _id: unique per tenant and agent (ids are only unique within an agent)."""
    key = f"{tenant_id}/{agent_id}/{doc_id}"
    return key if len(key.encode()) <= 500 else hashlib.sha256(key.encode()).hexdigest()


class ElasticsearchBackend:
    """SearchBackend on an Elasticsearch cluster (or an ES-API compatible server)."""

    def __init__(self, url: str, prefix: str = "mnemo", *, min_similarity: float = DEFAULT_MIN_SIMILARITY,
                 client: AsyncElasticsearch | None = None) -> None:
        self.url = url
        self.prefix = prefix
        self.min_similarity = min_similarity
        self.es = client or AsyncElasticsearch(
            url, node_class="httpxasync", request_timeout=30, retry_on_timeout=True, max_retries=3,
            retry_on_status=(429, 502, 503, 504))
        self._dims: dict[tuple[str, str, str], int | None] = {}
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

    # -- dimensions -------------------------------------------------------------------------------

    async def _agent_dim(self, tenant_id: str, agent_id: str, kind: str) -> int | None:
        key = (tenant_id, agent_id, kind)
        if self._dims.get(key):
            return self._dims[key]
        try:
            doc = await self.es.get(index=self.meta_index, id=_doc_key(tenant_id, agent_id, kind))
            dim = int(doc["_source"]["dim"])
        except NotFoundError:
            dim = None
        self._dims[key] = dim
        return dim

    async def _claim_dim(self, tenant_id: str, agent_id: str, kind: str, dims: set[int]) -> int | None:
        if len(dims) > 1:
            raise DimensionMismatch(f"one batch mixes vector dimensions {sorted(dims)}")
        current = await self._agent_dim(tenant_id, agent_id, kind)
        if not dims:
            return current
        (dim,) = dims
        if current is None:
            try:
                await self.es.index(index=self.meta_index, id=_doc_key(tenant_id, agent_id, kind),
                                    document={"tenant_id": tenant_id, "agent_id": agent_id, "kind": kind,
                                              "dim": dim}, op_type="create", refresh="wait_for")
                current = dim
            except Exception as exc:  # another writer claimed it first: compare with theirs
                if "version_conflict" not in str(exc):
                    raise
                self._dims.pop((tenant_id, agent_id, kind), None)
                current = await self._agent_dim(tenant_id, agent_id, kind)
            self._dims[(tenant_id, agent_id, kind)] = current
        if dim != current:
            raise DimensionMismatch(
                f"vector dimension {dim} does not match this agent's {kind} index (dimension {current})")
        return current

    # -- shared query parts -----------------------------------------------------------------------

    @staticmethod
    def _scope(tenant_id: str, agent_id: str) -> list[dict[str, Any]]:
        return [{"term": {"tenant_id": tenant_id}}, {"term": {"agent_id": agent_id}}]

    async def _write(self, kind: str, actions: list[dict[str, Any]]) -> None:
        if actions:
            await helpers.async_bulk(self.es, actions, refresh="wait_for", max_retries=3)

    async def _remove_elsewhere(self, kind: str, keep_index: str, keys: list[str]) -> None:
        """Keep one copy per id: a doc re-written with another dimension leaves its old index."""
        await self.es.delete_by_query(
            index=self._pattern(kind), refresh=True, conflicts="proceed",
            query={"bool": {"filter": [{"ids": {"values": keys}}],
                            "must_not": [{"term": {"_index": keep_index}}]}},
            ignore_unavailable=True, allow_no_indices=True)

    async def _hybrid(self, kind: str, dim: int | None, filters: list[dict[str, Any]], query: str,
                      fields: list[str], vector: list[float] | None, offset: int,
                      limit: int) -> tuple[list[tuple[dict[str, Any], float]], int]:
        depth = max(50, 2 * (offset + limit))
        chosen = query_terms(query)
        if not chosen and vector is None:
            return [], 0  # nothing searchable in the query
        text_query = {"multi_match": {"query": " ".join(chosen), "fields": fields, "operator": "or",
                                      "type": "most_fields"}}
        sources: dict[str, dict[str, Any]] = {}
        word_hits: list[tuple[str, float]] = []
        total = 0
        if chosen:
            words = await self.es.search(
                index=self._pattern(kind), query={"bool": {"must": [text_query], "filter": filters}},
                size=depth, track_total_hits=True, ignore_unavailable=True, allow_no_indices=True)
            sources = {h["_id"]: h["_source"] for h in words["hits"]["hits"]}
            word_hits = [(h["_id"], float(h["_score"] or 0.0)) for h in words["hits"]["hits"]]
            total = int(words["hits"]["total"]["value"])
        word_ids = {i for i, _ in word_hits}
        vec_hits: list[tuple[str, float]] = []
        cosines: dict[str, float] = {}
        if vector is not None and dim:
            qv = normalize(vector, dim)
            knn = await self.es.search(
                index=self._index(kind, dim), knn={
                    "field": "vector", "query_vector": qv.tolist(), "k": depth,
                    "num_candidates": max(100, 2 * depth), "similarity": self.min_similarity,
                    "filter": {"bool": {"filter": filters}}},
                size=depth, ignore_unavailable=True)
            for h in knn["hits"]["hits"]:
                vec_hits.append((h["_id"], 2.0 * float(h["_score"]) - 1.0))  # cosine _score = (1 + cos) / 2
                sources.setdefault(h["_id"], h["_source"])
            for i, _ in word_hits:  # cosine of word hits, for score fusion (vectors come back in _source)
                stored = sources[i].get("vector")
                if stored:
                    cosines[i] = float(np.asarray(stored, dtype=np.float32) @ qv)
            only_vec = [i for i, _ in vec_hits if i not in word_ids]
            if only_vec and not chosen:
                total += len(only_vec)
            elif only_vec:
                both = await self.es.count(
                    index=self._pattern(kind), ignore_unavailable=True, allow_no_indices=True,
                    query={"bool": {"must": [text_query], "filter": [*filters, {"ids": {"values": only_vec}}]}})
                total += len(only_vec) - int(both["count"])
        elif vector is not None and dim is None:
            pass  # the agent has no vectors yet: words alone
        fused = ranking.fuse(word_hits, vec_hits, cosines, VECTOR_WEIGHT)[offset: offset + limit]
        return [(sources[i], s) for i, s in fused], total

    async def _newest(self, kind: str, filters: list[dict[str, Any]], offset: int,
                      limit: int) -> tuple[list[tuple[dict[str, Any], float]], int]:
        res = await self.es.search(
            index=self._pattern(kind), query={"bool": {"filter": filters}},
            sort=[{"created_at": "desc"}, {"doc_id": "desc"}], from_=offset, size=limit,
            track_total_hits=True, ignore_unavailable=True, allow_no_indices=True)
        return [(h["_source"], 0.0) for h in res["hits"]["hits"]], int(res["hits"]["total"]["value"])

    async def _count(self, kind: str, tenant_id: str, agent_id: str) -> int:
        res = await self.es.count(index=self._pattern(kind), query={"bool": {"filter": self._scope(
            tenant_id, agent_id)}}, ignore_unavailable=True, allow_no_indices=True)
        return int(res["count"])

    # -- recall -----------------------------------------------------------------------------------

    async def index_messages(self, docs: list[RecallDoc]) -> None:
        groups: dict[tuple[str, str], list[RecallDoc]] = {}
        for d in docs:
            groups.setdefault((d.tenant_id, d.agent_id), []).append(d)
        for (tenant_id, agent_id), group in groups.items():
            vecs = [None if d.vector is None else normalize(d.vector) for d in group]
            dim = await self._claim_dim(tenant_id, agent_id, "recall", {len(v) for v in vecs if v is not None})
            index = self._index("recall", dim)
            await self._ensure_index(index, dim=dim)
            ordered = sorted(group, key=lambda d: (d.created_at, d.id))
            texts = [d.text for d in ordered]
            contexts = {d.id: d.context or neighbour_context(texts, i) for i, d in enumerate(ordered)}
            actions: list[dict[str, Any]] = []
            for d, v in zip(group, vecs, strict=True):
                src: dict[str, Any] = {
                    "tenant_id": tenant_id, "agent_id": agent_id, "doc_id": d.id, "role": d.role,
                    "text": d.text, "context": contexts[d.id], "auto_context": not d.context,
                    "dates": date_words(d.created_at), "created_at": _iso(d.created_at),
                    "turn_id": d.turn_id, "extra": d.extra}
                if v is not None:
                    src["vector"] = v.tolist()
                actions.append({"_op_type": "index", "_index": index,
                                "_id": _doc_key(tenant_id, agent_id, d.id), "_source": src})
            await self._write("recall", actions)
            await self._remove_elsewhere("recall", index, [a["_id"] for a in actions])
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
        common = {"index": self._pattern("recall"), "ignore_unavailable": True, "allow_no_indices": True,
                  "source_excludes": ["vector"]}
        span = await self.es.search(**common, query={"bool": {"filter": [*scope, {"range": {"created_at": {
            "gte": _iso(first), "lte": _iso(last)}}}]}}, sort=sort_asc, size=10_000)
        before = await self.es.search(**common, query={"bool": {"filter": [*scope, {"range": {"created_at": {
            "lt": _iso(first)}}}]}}, sort=sort_desc, size=CONTEXT_REACH)
        after = await self.es.search(**common, query={"bool": {"filter": [*scope, {"range": {"created_at": {
            "gt": _iso(last)}}}]}}, sort=sort_asc, size=CONTEXT_REACH)
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

    def _recall_doc(self, src: dict[str, Any]) -> RecallDoc:
        return RecallDoc(id=src["doc_id"], tenant_id=src["tenant_id"], agent_id=src["agent_id"],
                         role=src["role"], text=src["text"], created_at=_parse(src["created_at"]),
                         turn_id=src.get("turn_id", ""), extra=src.get("extra") or {},
                         context="" if src.get("auto_context") else src.get("context", ""))

    async def search_messages(self, tenant_id: str, agent_id: str, *, query: str = "",
                              vector: list[float] | None = None, start: datetime | None = None,
                              end: datetime | None = None, role: str | None = None,
                              offset: int = 0, limit: int = 10) -> Page[RecallDoc]:
        filters = self._scope(tenant_id, agent_id)
        if start is not None or end is not None:
            rng: dict[str, str] = {}
            if start is not None:
                rng["gte"] = _iso(start)
            if end is not None:
                rng["lte"] = _iso(end)
            filters.append({"range": {"created_at": rng}})
        if role:
            filters.append({"term": {"role": role}})
        offset, limit = max(0, offset), max(0, limit)
        if query.strip():
            dim = await self._agent_dim(tenant_id, agent_id, "recall")
            w = MESSAGE_WEIGHTS
            fields = [f"text^{w[0]}", f"context^{w[1]}", f"dates^{w[2]}"]
            found, total = await self._hybrid("recall", dim, filters, query, fields, vector, offset, limit)
        else:
            found, total = await self._newest("recall", filters, offset, limit)
        return Page(hits=[Hit(doc=self._recall_doc(s), score=sc) for s, sc in found], total=total)

    async def count_messages(self, tenant_id: str, agent_id: str) -> int:
        return await self._count("recall", tenant_id, agent_id)

    # -- archival ---------------------------------------------------------------------------------

    async def insert_passages(self, docs: list[PassageDoc]) -> None:
        groups: dict[tuple[str, str], list[PassageDoc]] = {}
        for d in docs:
            groups.setdefault((d.tenant_id, d.agent_id), []).append(d)
        for (tenant_id, agent_id), group in groups.items():
            vecs = [None if d.vector is None else normalize(d.vector) for d in group]
            dim = await self._claim_dim(tenant_id, agent_id, "archival",
                                        {len(v) for v in vecs if v is not None})
            index = self._index("archival", dim)
            await self._ensure_index(index, dim=dim)
            actions = []
            for d, v in zip(group, vecs, strict=True):
                src: dict[str, Any] = {
                    "tenant_id": tenant_id, "agent_id": agent_id, "doc_id": d.id, "text": d.text,
                    "created_at": _iso(d.created_at), "tags": list(d.tags), "source_id": d.source_id,
                    "position": d.position, "metadata": d.metadata}
                if v is not None:
                    src["vector"] = v.tolist()
                actions.append({"_op_type": "index", "_index": index,
                                "_id": _doc_key(tenant_id, agent_id, d.id), "_source": src})
            await self._write("archival", actions)
            await self._remove_elsewhere("archival", index, [a["_id"] for a in actions])

    def _passage_doc(self, src: dict[str, Any]) -> PassageDoc:
        return PassageDoc(id=src["doc_id"], tenant_id=src["tenant_id"], agent_id=src["agent_id"],
                          text=src["text"], created_at=_parse(src["created_at"]), tags=src.get("tags") or [],
                          source_id=src.get("source_id", ""), position=int(src.get("position", 0)),
                          metadata=src.get("metadata") or {})

    async def search_passages(self, tenant_id: str, agent_id: str, *, query: str = "",
                              vector: list[float] | None = None, tags: list[str] | None = None,
                              offset: int = 0, limit: int = 10) -> Page[PassageDoc]:
        filters = self._scope(tenant_id, agent_id)
        for tag in sorted(set(tags or [])):
            filters.append({"term": {"tags": tag}})
        offset, limit = max(0, offset), max(0, limit)
        if query.strip():
            dim = await self._agent_dim(tenant_id, agent_id, "archival")
            found, total = await self._hybrid("archival", dim, filters, query, ["text"], vector, offset, limit)
        else:
            found, total = await self._newest("archival", filters, offset, limit)
        return Page(hits=[Hit(doc=self._passage_doc(s), score=sc) for s, sc in found], total=total)

    async def delete_passage(self, tenant_id: str, agent_id: str, passage_id: str) -> bool:
        res = await self.es.delete_by_query(
            index=self._pattern("archival"), refresh=True, conflicts="proceed", ignore_unavailable=True,
            allow_no_indices=True, query={"bool": {"filter": [
                *self._scope(tenant_id, agent_id), {"ids": {"values": [_doc_key(tenant_id, agent_id, passage_id)]}}]}})
        return int(res.get("deleted", 0)) > 0

    async def count_passages(self, tenant_id: str, agent_id: str) -> int:
        return await self._count("archival", tenant_id, agent_id)

    # -- whole agent ------------------------------------------------------------------------------

    async def delete_agent(self, tenant_id: str, agent_id: str) -> None:
        scope = {"bool": {"filter": self._scope(tenant_id, agent_id)}}
        await self.es.delete_by_query(index=f"{self._pattern('recall')},{self._pattern('archival')},"
                                      f"{self.meta_index}", query=scope, refresh=True, conflicts="proceed",
                                      ignore_unavailable=True, allow_no_indices=True)
        for kind in ("recall", "archival"):
            self._dims.pop((tenant_id, agent_id, kind), None)
