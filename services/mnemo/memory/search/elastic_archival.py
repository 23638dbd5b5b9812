"""Archival hygiene on Elasticsearch: expiry filters and purges, lookups by id, nearest passages by
cosine (deduplication), the newest passages with their vectors, bulk deletes by filter.

Functions of an `ElasticsearchBackend` (elastic.py), which delegates to them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from mnemo.memory.search.base import Hit, PassageDoc, PassageFilter
from mnemo.memory.search.elastic_docs import doc_key, iso, passage_doc
from mnemo.memory.search.vectors import normalize

if TYPE_CHECKING:
    from mnemo.memory.search.elastic import ElasticsearchBackend

EXPIRY_FIELD = {"expires_at": {"type": "date"}}


def live_filter(now: datetime) -> dict[str, Any]:
    """A filter clause hiding passages expired at `now` (a passage without `expires_at` never expires)."""
    return {"bool": {"must_not": [{"range": {"expires_at": {"lte": iso(now)}}}]}}


def _now() -> datetime:
    return datetime.now(UTC)


async def get_passages(b: ElasticsearchBackend, tenant_id: str, agent_id: str, ids: list[str]) -> list[PassageDoc]:
    if not ids:
        return []
    res = await b.es.search(
        index=b._pattern("archival"), size=len(ids), source_excludes=["vector"], ignore_unavailable=True,
        allow_no_indices=True,
        query={"bool": {"filter": [*b._scope(tenant_id, agent_id), live_filter(_now()),
                                   {"ids": {"values": [doc_key(tenant_id, agent_id, i) for i in ids]}}]}})
    return [passage_doc(h["_source"]) for h in res["hits"]["hits"]]


async def similar_passages(b: ElasticsearchBackend, tenant_id: str, agent_id: str, vectors: list[list[float]],
                           min_similarity: float, limit: int) -> list[list[Hit[PassageDoc]]]:
    dim = await b.dims.get(tenant_id, agent_id, "archival")
    if dim is None:
        return [[] for _ in vectors]
    filters = [*b._scope(tenant_id, agent_id), live_filter(_now())]
    out: list[list[Hit[PassageDoc]]] = []
    for vector in vectors:
        q = normalize(vector, dim)
        res = await b.es.search(
            index=b._index("archival", dim), size=limit, source_excludes=["vector"], ignore_unavailable=True,
            knn={"field": "vector", "query_vector": q.tolist(), "k": limit, "num_candidates": max(50, 10 * limit),
                 "similarity": min_similarity, "filter": {"bool": {"filter": filters}}})
        hits = [Hit(doc=passage_doc(h["_source"]), score=2.0 * float(h["_score"]) - 1.0)  # _score = (1 + cos) / 2
                for h in res["hits"]["hits"]]
        out.append([h for h in hits if h.score >= min_similarity - 1e-6])
    return out


async def passage_vectors(b: ElasticsearchBackend, tenant_id: str, agent_id: str, limit: int) -> list[PassageDoc]:
    dim = await b.dims.get(tenant_id, agent_id, "archival")
    if dim is None:
        return []
    res = await b.es.search(
        index=b._index("archival", dim), size=limit, sort=[{"created_at": "desc"}, {"doc_id": "desc"}],
        ignore_unavailable=True,
        query={"bool": {"filter": [*b._scope(tenant_id, agent_id), live_filter(_now())]}})
    out = []
    for h in res["hits"]["hits"]:
        doc = passage_doc(h["_source"])
        doc.vector = h["_source"].get("vector")
        if doc.vector:
            out.append(doc)
    return out


def _filters(b: ElasticsearchBackend, tenant_id: str, agent_id: str, where: PassageFilter) -> list[dict[str, Any]]:
    filters = b._scope(tenant_id, agent_id)
    for tag in sorted(set(where.tags or [])):
        filters.append({"term": {"tags": tag}})
    rng: dict[str, str] = {}
    if where.start is not None:
        rng["gte"] = iso(where.start)
    if where.end is not None:
        rng["lte"] = iso(where.end)
    if rng:
        filters.append({"range": {"created_at": rng}})
    if where.source_id:
        filters.append({"term": {"source_id": where.source_id}})
    if where.ids:
        filters.append({"ids": {"values": [doc_key(tenant_id, agent_id, i) for i in where.ids]}})
    return filters


async def delete_passages(b: ElasticsearchBackend, tenant_id: str, agent_id: str, where: PassageFilter) -> int:
    if where.empty:
        return 0
    res = await b.es.delete_by_query(index=b._pattern("archival"), refresh=True, conflicts="proceed",
                                     ignore_unavailable=True, allow_no_indices=True,
                                     query={"bool": {"filter": _filters(b, tenant_id, agent_id, where)}})
    return int(res.get("deleted", 0))


async def purge_expired(b: ElasticsearchBackend, now: datetime) -> int:
    res = await b.es.delete_by_query(index=b._pattern("archival"), refresh=True, conflicts="proceed",
                                     ignore_unavailable=True, allow_no_indices=True,
                                     query={"bool": {"filter": [{"range": {"expires_at": {"lte": iso(now)}}}]}})
    return int(res.get("deleted", 0))
