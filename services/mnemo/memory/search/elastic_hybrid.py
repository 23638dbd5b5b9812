"""Hybrid search on Elasticsearch: the query's words (BM25) and its meaning (kNN), fused into one ranking.

Three ways to fuse, `MNEMO_ELASTICSEARCH_HYBRID` (`Settings.elasticsearch_hybrid`):

- `linear`: one search request with a `linear` retriever (Elasticsearch 8.18+ / 9.x): a `standard`
  retriever (BM25) and a `knn` retriever, each min-max normalised over its window and weighted
  1 - w and w (w = `MNEMO_SEARCH_MEANING_WEIGHT`): the convex combination of `text.fuse`, computed
  by the cluster.
- `boosts`: one search request with a top-level `query` (BM25, boost 1 - w) and `knn` (boost w); the
  cluster sums the boosted scores. BM25 is not normalised there, so words weigh more than w says.
- `client`: a BM25 search and a kNN search (and a count when both found something), fused here by
  `text.fuse` exactly as the embedded backend fuses (BM25 scaled by the best hit, as ES gives no
  per-term IDFs with a search). Works on any licence and any ES-API server.

A native way the cluster refuses (an unknown retriever before 8.18, a licence without it, a server that
does not know top-level `knn`) is detected on the first search that uses it: the search is answered the
`client` way and, if that succeeds, the refusal is remembered for the life of the `HybridSearch` (logged
once at INFO); an error that the `client` way meets too is raised and remembers nothing. A native answer
with failed shards (a kNN on an index without the vector field before 8.15) is answered the `client` way
too, without remembering. Searches with words alone or meaning alone are one request in every way.

`total` means the same in every way: the documents that match a query word, plus those among the best
`depth` vectors (cosine >= min_similarity) that match none.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

import numpy as np
from elasticsearch import ApiError, AsyncElasticsearch

from mnemo.memory.search import text as ranking
from mnemo.memory.search.text import MEANING_WEIGHT, VECTOR_WEIGHT, query_terms
from mnemo.memory.search.vectors import normalize

log = logging.getLogger(__name__)

Source = dict[str, Any]
Found = tuple[list[tuple[Source, float]], int]
Mode = Literal["linear", "boosts", "client"]
MODES: tuple[Mode, ...] = ("linear", "boosts", "client")
# What each way falls back to when the cluster refuses it.
FALLBACK: dict[Mode, Mode] = {"linear": "client", "boosts": "client"}
# The linear retriever's normaliser of each side.
NORMALIZER = "minmax"


class Refused(Exception):
    """The cluster answered a native hybrid request with an error status (`lasting`: the way is refused,
    not this request) or with failed shards (a shard's trouble may pass: the way is kept)."""

    def __init__(self, reason: str, *, lasting: bool = True) -> None:
        super().__init__(reason)
        self.lasting = lasting


@dataclass
class Request:
    """One hybrid search: `words_index` (every index of the kind) is searched for the query's words in
    `fields`, `vectors_index` (the index of the agent's dimension `dim`; no vector search while `dim`
    is None) for `vector`, both under `filters`; `native_index` names the indices holding the agent's
    documents (the dimension's and the one of documents without vectors), searched by one request."""

    words_index: str
    vectors_index: str
    native_index: str
    dim: int | None
    filters: list[dict[str, Any]]
    query: str
    fields: list[str]
    vector: list[float] | None
    min_similarity: float
    offset: int
    limit: int
    meaning_weight: float = MEANING_WEIGHT

    @property
    def depth(self) -> int:
        """Candidates taken from each side: 50, or twice the end of the page when deeper."""
        return max(50, 2 * (self.offset + self.limit))

    @cached_property
    def terms(self) -> list[str]:
        """The query's content terms (parsed once per search, read by every request it makes)."""
        return query_terms(self.query)

    def text_query(self, boost: float | None = None, ids: list[str] | None = None) -> dict[str, Any]:
        """The BM25 query under the filters (and among `ids` when given): any content term of the
        query in any of `fields`."""
        match: dict[str, Any] = {"query": " ".join(self.terms), "fields": self.fields, "operator": "or",
                                 "type": "most_fields"}
        filters = self.filters if ids is None else [*self.filters, {"ids": {"values": ids}}]
        body: dict[str, Any] = {"must": [{"multi_match": match}], "filter": filters}
        if boost is not None:
            body["boost"] = boost
        return {"bool": body}

    def knn(self, query_vector: list[float], boost: float | None = None) -> dict[str, Any]:
        """The kNN search under the filters: the best `depth` vectors with a cosine of min_similarity."""
        body: dict[str, Any] = {"field": "vector", "query_vector": query_vector, "k": self.depth,
                                "num_candidates": max(100, 2 * self.depth), "similarity": self.min_similarity,
                                "filter": {"bool": {"filter": self.filters}}}
        if boost is not None:
            body["boost"] = boost
        return body


class HybridSearch:
    """Hybrid searches of one backend in the way `mode` names, remembering the ways the cluster refused."""

    def __init__(self, es: AsyncElasticsearch, mode: Mode = "linear") -> None:
        if mode not in MODES:
            raise ValueError(f"unknown Elasticsearch hybrid mode {mode!r} (one of {', '.join(MODES)})")
        self.es = es
        self.mode: Mode = mode
        self.refused: set[Mode] = set()
        self.last_mode: Mode | None = None  # the way the last search was answered (for tests and benches)

    def effective_mode(self) -> Mode:
        """The way searches with words and meaning are answered now."""
        mode = self.mode
        while mode in self.refused:
            mode = FALLBACK[mode]
        return mode

    async def search(self, req: Request) -> Found:
        """One page of (_source, score) and the number of matches."""
        chosen = req.terms
        if not chosen and req.vector is None:
            return [], 0  # nothing searchable in the query
        mode = self.effective_mode()
        if mode == "client" or not chosen or req.vector is None or not req.dim:
            self.last_mode = "client"
            return await client_side(self.es, req)  # one request already when only one side searches
        try:
            found = await (linear(self.es, req) if mode == "linear" else boosted(self.es, req))
        except Refused as exc:
            found = await client_side(self.es, req)  # raises when the trouble was not the native way
            if exc.lasting and mode not in self.refused:
                self.refused.add(mode)
                log.info("Elasticsearch hybrid search: the cluster refused the %s way (%s); fusing client-side "
                         "from now on", mode, exc)
            self.last_mode = "client"
            return found
        self.last_mode = mode
        return found


def _query_vector(req: Request) -> list[float]:
    assert req.vector is not None and req.dim
    return [float(x) for x in normalize(req.vector, req.dim)]


async def _native(es: AsyncElasticsearch, req: Request, **body: Any) -> Found:
    """Run one native hybrid request; Refused on an error status or a failed shard."""
    try:
        res = await es.search(index=req.native_index, from_=req.offset, size=req.limit, track_total_hits=True,
                              source_excludes=["vector"], ignore_unavailable=True, allow_no_indices=True, **body)
    except ApiError as exc:
        if exc.meta.status in (400, 403, 405, 501):
            raise Refused(f"{exc.meta.status}: {_reason(exc)}") from exc
        raise
    shards = res.get("_shards") or {}
    if shards.get("failed"):
        raise Refused(f"{shards['failed']} of {shards.get('total')} shards failed: {shards.get('failures')}",
                      lasting=False)
    hits = res["hits"]["hits"]
    return [(h["_source"], float(h["_score"] or 0.0)) for h in hits], int(res["hits"]["total"]["value"])


def _reason(exc: ApiError) -> str:
    body = exc.body if isinstance(exc.body, dict) else {}
    error = body.get("error")
    if isinstance(error, dict):
        return str(error.get("reason") or error.get("type") or error)
    return str(error or exc.message)


async def linear(es: AsyncElasticsearch, req: Request) -> Found:
    """Words and meaning in one request: a `linear` retriever of a `standard` (BM25) and a `knn`
    retriever, min-max normalised, weighted 1 - w and w."""
    w = req.meaning_weight
    retriever = {"linear": {"retrievers": [
        {"retriever": {"standard": {"query": req.text_query()}}, "weight": 1.0 - w, "normalizer": NORMALIZER},
        {"retriever": {"knn": req.knn(_query_vector(req))}, "weight": w, "normalizer": NORMALIZER},
    ], "rank_window_size": req.depth}}
    return await _native(es, req, retriever=retriever)


async def boosted(es: AsyncElasticsearch, req: Request) -> Found:
    """Words and meaning in one request: top-level `query` (boost 1 - w) and `knn` (boost w), summed."""
    w = req.meaning_weight
    return await _native(es, req, query=req.text_query(boost=1.0 - w), knn=req.knn(_query_vector(req), boost=w))


async def client_side(es: AsyncElasticsearch, req: Request) -> Found:
    """A BM25 search, a kNN search and, when both found something, a count; fused by `text.fuse`."""
    depth = req.depth
    chosen = req.terms
    sources: dict[str, Source] = {}
    word_hits: list[tuple[str, float]] = []
    total = 0
    if chosen:
        words = await es.search(
            index=req.words_index, query=req.text_query(), size=depth, track_total_hits=True,
            ignore_unavailable=True, allow_no_indices=True)
        sources = {h["_id"]: h["_source"] for h in words["hits"]["hits"]}
        word_hits = [(h["_id"], float(h["_score"] or 0.0)) for h in words["hits"]["hits"]]
        total = int(words["hits"]["total"]["value"])
    word_ids = {i for i, _ in word_hits}
    vec_hits: list[tuple[str, float]] = []
    cosines: dict[str, float] = {}
    if req.vector is not None and req.dim:  # without `dim` the agent has no vectors yet: words alone
        qv = normalize(req.vector, req.dim)
        knn = await es.search(index=req.vectors_index, knn=req.knn(qv.tolist()), size=depth, ignore_unavailable=True)
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
            both = await es.count(index=req.words_index, ignore_unavailable=True, allow_no_indices=True,
                                  query=req.text_query(ids=only_vec))
            total += len(only_vec) - int(both["count"])
    fused = ranking.fuse(word_hits, vec_hits, cosines, VECTOR_WEIGHT, alpha=req.meaning_weight)
    return [(sources[i], s) for i, s in fused[req.offset: req.offset + req.limit]], total
