"""Hybrid search on Elasticsearch: a BM25 query and a filtered kNN query, fused client-side.

Fusion runs here (text.fuse) rather than in an `rrf` retriever, so it works on any licence and on
ES-API emulators, and ranks like the embedded backend (the same `text.fuse`, the same meaning weight,
`MNEMO_SEARCH_MEANING_WEIGHT`; BM25 scaled by the best hit, as ES gives no per-term IDFs with a search).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from elasticsearch import AsyncElasticsearch

from mnemo.memory.search import text as ranking
from mnemo.memory.search.text import MEANING_WEIGHT, VECTOR_WEIGHT, query_terms
from mnemo.memory.search.vectors import normalize

Source = dict[str, Any]


async def hybrid_search(es: AsyncElasticsearch, *, words_index: str, vectors_index: str, dim: int | None,
                        filters: list[dict[str, Any]], query: str, fields: list[str],
                        vector: list[float] | None, min_similarity: float, offset: int,
                        limit: int, meaning_weight: float = MEANING_WEIGHT) -> tuple[list[tuple[Source, float]], int]:
    """One page of (_source, score) and the number of matches.

    `words_index` is searched for the query's words in `fields`; `vectors_index` (the index of the
    agent's dimension `dim`; no vector search while `dim` is None) for `vector`; both under `filters`.
    """
    depth = max(50, 2 * (offset + limit))
    chosen = query_terms(query)
    if not chosen and vector is None:
        return [], 0  # nothing searchable in the query
    text_query = {"multi_match": {"query": " ".join(chosen), "fields": fields, "operator": "or",
                                  "type": "most_fields"}}
    sources: dict[str, Source] = {}
    word_hits: list[tuple[str, float]] = []
    total = 0
    if chosen:
        words = await es.search(
            index=words_index, query={"bool": {"must": [text_query], "filter": filters}},
            size=depth, track_total_hits=True, ignore_unavailable=True, allow_no_indices=True)
        sources = {h["_id"]: h["_source"] for h in words["hits"]["hits"]}
        word_hits = [(h["_id"], float(h["_score"] or 0.0)) for h in words["hits"]["hits"]]
        total = int(words["hits"]["total"]["value"])
    word_ids = {i for i, _ in word_hits}
    vec_hits: list[tuple[str, float]] = []
    cosines: dict[str, float] = {}
    if vector is not None and dim:  # without `dim` the agent has no vectors yet: words alone
        qv = normalize(vector, dim)
        knn = await es.search(
            index=vectors_index, knn={
                "field": "vector", "query_vector": qv.tolist(), "k": depth,
                "num_candidates": max(100, 2 * depth), "similarity": min_similarity,
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
            both = await es.count(
                index=words_index, ignore_unavailable=True, allow_no_indices=True,
                query={"bool": {"must": [text_query], "filter": [*filters, {"ids": {"values": only_vec}}]}})
            total += len(only_vec) - int(both["count"])
    fused = ranking.fuse(word_hits, vec_hits, cosines, VECTOR_WEIGHT, alpha=meaning_weight)[offset: offset + limit]
    return [(sources[i], s) for i, s in fused], total
