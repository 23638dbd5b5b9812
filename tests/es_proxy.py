"""An HTTP server in front of an Elasticsearch endpoint (noida-db or a real cluster), for the tests and
benches of the hybrid search ways (services/mnemo/memory/search/elastic_hybrid.py).

It forwards every request unchanged and counts the searches it forwarded, except:

- `refuse="unknown"`: a search with a `linear` retriever is answered with the 400 a cluster before
  8.18 gives (`unknown retriever [linear]`);
- `refuse="license"`: the same search is answered with the 403 of a licence without the feature;
- `refuse="shards"`: the same search is answered 200 with a failed shard and no hits (as a kNN on an
  index without the vector field was answered before 8.15);
- `linear=True`: a search with a `linear` retriever is answered the way Elasticsearch's
  LinearRetrieverBuilder and MinMaxScoreNormalizer answer it (x-pack rank-rrf), from plain searches
  forwarded to the endpoint, for an endpoint without the retriever (noida-db knows `rrf`, not `linear`):
  each inner retriever's best `rank_window_size` hits, scores min-max normalised per retriever (all
  equal: left as they are), weighted and summed, best first (ties by index and id), cut to the window;
  `hits.total` counts the documents matching any inner retriever (the query's matches and the kNN
  hits), as a compound retriever counts them with `track_total_hits`.

Start it on the running event loop (`proxy = await EsProxy(upstream).start()`, then use `proxy.url`), or
on a loop of its own in a thread (`EsProxy(upstream).start_in_thread()`, `stop_thread()`), for fixtures
that cannot await.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any, Literal

import aiohttp
from aiohttp import web

PRODUCT = {"X-Elastic-Product": "Elasticsearch"}

UNKNOWN_RETRIEVER = {"error": {
    "root_cause": [{"type": "parsing_exception", "reason": "unknown retriever [linear]", "line": 1, "col": 27}],
    "type": "parsing_exception", "reason": "unknown retriever [linear]", "line": 1, "col": 27,
    "caused_by": {"type": "named_object_not_found_exception", "reason": "[1:27] unknown field [linear]"}},
    "status": 400}
NON_COMPLIANT = {"error": {
    "root_cause": [{"type": "security_exception", "reason": "current license is non-compliant for [linear retriever]",
                    "license.expired.feature": "linear retriever"}],
    "type": "security_exception", "reason": "current license is non-compliant for [linear retriever]",
    "license.expired.feature": "linear retriever"}, "status": 403}
SHARD_FAILED = {"took": 1, "timed_out": False, "_shards": {"total": 2, "successful": 1, "skipped": 0, "failed": 1,
                "failures": [{"shard": 0, "index": "x-recall-d0", "reason": {
                    "type": "illegal_argument_exception",
                    "reason": "field [vector] does not exist in the mapping"}}]},
                "hits": {"total": {"value": 0, "relation": "eq"}, "max_score": None, "hits": []}}


class EsProxy:
    def __init__(self, upstream: str, *, refuse: Literal["unknown", "license", "shards"] | None = None,
                 linear: bool = False) -> None:
        self.upstream = upstream.rstrip("/")
        self.refuse = refuse
        self.linear = linear
        self.searches: list[dict[str, Any]] = []  # bodies of the search requests received
        self.refused = 0
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self.url = ""

    async def start(self) -> EsProxy:
        self._session = aiohttp.ClientSession()
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._session is not None:
            await self._session.close()

    def start_in_thread(self) -> EsProxy:
        loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=loop.run_forever, name="es-proxy", daemon=True)
        self._thread.start()
        self._loop = loop
        asyncio.run_coroutine_threadsafe(self.start(), loop).result(timeout=10)
        return self

    def stop_thread(self) -> None:
        asyncio.run_coroutine_threadsafe(self.stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if request.path.endswith("/_search") and raw:
            body = json.loads(raw)
            self.searches.append(body)
            if "linear" in (body.get("retriever") or {}):
                if self.refuse == "unknown":
                    self.refused += 1
                    return web.json_response(UNKNOWN_RETRIEVER, status=400, headers=PRODUCT)
                if self.refuse == "license":
                    self.refused += 1
                    return web.json_response(NON_COMPLIANT, status=403, headers=PRODUCT)
                if self.refuse == "shards":
                    self.refused += 1
                    return web.json_response(SHARD_FAILED, headers=PRODUCT)
                if self.linear:
                    return web.json_response(await self._linear(request, body), headers=PRODUCT)
        return await self._forward(request.method, request.path_qs, raw, request.headers)

    async def _forward(self, method: str, path_qs: str, raw: bytes, headers: Any) -> web.Response:
        assert self._session is not None
        keep = {k: v for k, v in headers.items() if k.lower() in ("content-type", "accept", "authorization")}
        async with self._session.request(method, self.upstream + path_qs, data=raw or None, headers=keep) as res:
            data = await res.read()
            out = {k: v for k, v in res.headers.items() if k.lower() in ("content-type", "x-elastic-product")}
            return web.Response(body=data, status=res.status, headers=out)

    async def _search(self, index: str, params: dict[str, str], body: dict[str, Any]) -> dict[str, Any]:
        assert self._session is not None
        async with self._session.post(f"{self.upstream}/{index}/_search", params=params, json=body) as res:
            data: dict[str, Any] = await res.json(content_type=None)
            if res.status != 200:
                raise web.HTTPBadRequest(text=json.dumps(data), content_type="application/json", headers=PRODUCT)
            return data

    async def _linear(self, request: web.Request, body: dict[str, Any]) -> dict[str, Any]:
        index = request.match_info["tail"].split("/")[0]
        params = {k: v for k, v in request.query.items() if k in ("ignore_unavailable", "allow_no_indices")}
        spec = body["retriever"]["linear"]
        window = int(spec.get("rank_window_size", 10))
        combined: dict[tuple[str, str], float] = {}
        count_clauses: list[dict[str, Any]] = []
        for component in spec["retrievers"]:
            (kind, inner), = component["retriever"].items()
            if kind == "standard":
                sub: dict[str, Any] = {"query": inner["query"]}
                count_clauses.append(inner["query"])
            elif kind == "knn":
                sub = {"knn": {**inner, "k": min(int(inner.get("k", window)), window)}}
            else:
                raise web.HTTPBadRequest(text=f"retriever [{kind}] is not emulated here")
            found = await self._search(index, params, {**sub, "size": window, "_source": False})
            hits = [((h["_index"], h["_id"]), float(h["_score"])) for h in found["hits"]["hits"]]
            if kind == "knn" and hits:
                count_clauses.append({"ids": {"values": [key[1] for key, _ in hits]}})
            for key, score in _normalized(hits, component.get("normalizer", "none")):
                combined[key] = combined.get(key, 0.0) + float(component.get("weight", 1.0)) * score
        ranked = sorted(combined.items(), key=lambda kv: (-kv[1], kv[0]))[:window]
        start, size = int(body.get("from", 0)), int(body.get("size", 10))
        page = ranked[start: start + size]
        sources: dict[tuple[str, str], Any] = {}
        if page:
            fetch: dict[str, Any] = {"query": {"ids": {"values": [key[1] for key, _ in page]}}, "size": len(page)}
            if "_source" in body:
                fetch["_source"] = body["_source"]
            fetched = await self._search(index, {**params, **_source_params(request)}, fetch)
            sources = {(h["_index"], h["_id"]): h.get("_source") for h in fetched["hits"]["hits"]}
        total = 0
        if count_clauses:
            counted = await self._search(index, params, {"size": 0, "track_total_hits": True, "query": {
                "bool": {"should": count_clauses, "minimum_should_match": 1}}})
            total = int(counted["hits"]["total"]["value"])
        hits_out = [{"_index": key[0], "_id": key[1], "_score": score, "_source": sources.get(key, {})}
                    for key, score in page]
        return {"took": 0, "timed_out": False, "_shards": {"total": 1, "successful": 1, "skipped": 0, "failed": 0},
                "hits": {"total": {"value": total, "relation": "eq"},
                         "max_score": page[0][1] if page else None, "hits": hits_out}}


def _source_params(request: web.Request) -> dict[str, str]:
    return {k: v for k, v in request.query.items() if k in ("_source", "_source_includes", "_source_excludes")}


def _normalized(hits: list[tuple[tuple[str, str], float]], normalizer: str) -> list[tuple[tuple[str, str], float]]:
    """ES's score normalisers: `minmax` maps the window's scores to [0, 1] (all equal: left as they are)."""
    if normalizer == "none" or not hits:
        return hits
    if normalizer != "minmax":
        raise web.HTTPBadRequest(text=f"normalizer [{normalizer}] is not emulated here")
    scores = [s for _, s in hits]
    lo, hi = min(scores), max(scores)
    if abs(hi - lo) < 1e-6:
        return [(k, lo) for k, _ in hits]
    return [(k, (s - lo) / (hi - lo)) for k, s in hits]
