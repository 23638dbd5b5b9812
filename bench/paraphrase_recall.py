"""Paraphrase recall: facts told once in a long history, asked back weeks later in other words.

For each size (default 1k and 10k messages; `--sizes 1000,10000,100000` for the 100k history) a
synthetic history (bench/paraphrase_data.py: chit-chat, each fact told once by the user, distractors
on every fact's topic, most of them using the question's own words) is indexed into one agent's
recall memory of each backend, with vectors made as the memory service's recall indexer makes them
(each message embedded once alone by the product's local MiniLM model, then mixed with its
neighbours'; contexts and date words derived by the backend). Each question is then searched as
`conversation_search` does (query + its vector, first page of 10): a hit when the fact's message is
among the first k. Archival: the user messages as passages of one agent, the same questions through
`archival_memory_search`. Prints recall@1/5/10 per size, backend and memory kind.

Vectors are cached on disk (see vector_cache.py; the run says where): a first 100k run embeds some 50k
distinct texts (a few minutes on 2 cores), later runs none. Elasticsearch: `--es-url`, else a noida-db
(the Elasticsearch-API emulator the tests use) started here.

Rows are the default configuration; `--meaning-weights 0,0.5,1` adds the embedded backend at other
weights of meaning against words (0: words decide, candidates still from both sides; 1: meaning decides).
`--es-hybrid linear,boosts,client` runs Elasticsearch once per way of fusing (MNEMO_ELASTICSEARCH_HYBRID);
on noida-db, which has no `linear` retriever, `linear` goes through tests/es_proxy.py, which answers it
as Elasticsearch does (its rows say "emulated"); a row names the way that answered when it is not the
one asked for (a refusal).

Usage: .venv/bin/python bench/paraphrase_recall.py [--sizes 1000,10000] [--backends embedded,elasticsearch]
       [--es-url URL] [--es-hybrid MODE,...] [--meaning-weights W,...] [--no-archival] [--no-cache]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from paraphrase_data import History, build  # noqa: E402
from vector_cache import CachedEmbedder  # noqa: E402

KS = (1, 5, 10)
TENANT = "bench"


def recall_at(ranks: list[int | None]) -> list[float]:
    """Recall@k for KS from each question's rank of its answer (0-based; None: not on the page)."""
    return [sum(1 for r in ranks if r is not None and r < k) / len(ranks) for k in KS]


async def _backend(name: str, es_url: str | None, home: Path, weight: float | None, hybrid: str | None = None):
    from mnemo.common.config import Settings
    from mnemo.memory.search import create_backend

    extra: dict[str, object] = {}
    if es_url:
        extra |= {"elasticsearch_url": es_url, "elasticsearch_index_prefix": f"para{time.time_ns()}"}
    if hybrid:
        extra["elasticsearch_hybrid"] = hybrid
    if weight is not None:
        extra["search_meaning_weight"] = weight
    backend = create_backend(Settings(home=home, search_backend=name, **extra))
    await backend.start()
    return backend


async def run_recall(backend, agent: str, history: History, embedder: CachedEmbedder) -> list[int | None]:
    from mnemo.memory.search import RecallDoc

    vectors = embedder.recall_vectors([m.text for m in history.messages])
    docs = [RecallDoc(id=m.id, tenant_id=TENANT, agent_id=agent, role=m.role, text=m.text, created_at=m.created_at,
                      vector=v.tolist()) for m, v in zip(history.messages, vectors, strict=True)]
    for i in range(0, len(docs), 1_000):   # as the indexer writes: batches, in time order
        await backend.index_messages(docs[i: i + 1_000])
    qvecs = embedder.embed([q.text for q in history.questions])
    ranks: list[int | None] = []
    for q, qv in zip(history.questions, qvecs, strict=True):
        page = await backend.search_messages(TENANT, agent, query=q.text, vector=qv.tolist(), limit=max(KS))
        ids = [h.doc.id for h in page.hits]
        ranks.append(ids.index(q.answer_id) if q.answer_id in ids else None)
    return ranks


async def run_archival(backend, agent: str, history: History, embedder: CachedEmbedder) -> list[int | None]:
    from mnemo.memory.search import PassageDoc

    users = [m for m in history.messages if m.role == "user"]
    vectors = embedder.embed([m.text for m in users])
    docs = [PassageDoc(id=m.id, tenant_id=TENANT, agent_id=agent, text=m.text, created_at=m.created_at,
                       vector=v.tolist()) for m, v in zip(users, vectors, strict=True)]
    for i in range(0, len(docs), 1_000):
        await backend.insert_passages(docs[i: i + 1_000])
    qvecs = embedder.embed([q.text for q in history.questions])
    ranks: list[int | None] = []
    for q, qv in zip(history.questions, qvecs, strict=True):
        page = await backend.search_passages(TENANT, agent, query=q.text, vector=qv.tolist(), limit=max(KS))
        ids = [h.doc.id for h in page.hits]
        ranks.append(ids.index(q.answer_id) if q.answer_id in ids else None)
    return ranks


def _row(size: int, backend: str, kind: str, ranks: list[int | None], seconds: float) -> str:
    return (f"{size:>8} {backend:<30}{kind:<10}{len(ranks):>4}"
            + "".join(f"{r:>8.3f}" for r in recall_at(ranks)) + f"{seconds:>8.1f}s")


async def main_async(args: argparse.Namespace) -> None:
    from mnemo.common.config import Settings
    from tests.es_proxy import EsProxy

    embedder = CachedEmbedder(use_cache=not args.no_cache)
    es_url = args.es_url
    noida = None
    proxy = None
    names = args.backends.split(",")
    if "elasticsearch" in names and not es_url:
        from tests.fixtures_search import NoidaElasticsearch

        noida = NoidaElasticsearch(Path(tempfile.mkdtemp(prefix="para-noida-"))).start()
        es_url = noida.url
    modes = [m for m in (args.es_hybrid or Settings().elasticsearch_hybrid).split(",") if m]
    if noida is not None and "linear" in modes:
        proxy = await EsProxy(es_url, linear=True).start()  # noida-db has no linear retriever
    runs: list[tuple[str, float | None, str | None]] = []
    for name in names:
        runs += [(name, None, m) for m in modes] if name == "elasticsearch" else [(name, None, None)]
    runs += [("embedded", float(w), None) for w in args.meaning_weights.split(",") if w]
    print(f"{'messages':>8} {'backend':<30}{'memory':<10}{'n':>4}" + "".join(f"{f'R@{k}':>8}" for k in KS)
          + f"{'time':>9}")
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            history = build(size)
            overlap = sum(q.overlap for q in history.questions)
            print(f"# {size} messages: {len(history.questions)} facts, {history.distractors} distractors,"
                  f" {overlap} content words shared by questions and facts", flush=True)
            for name, weight, mode in runs:
                url = None
                if name == "elasticsearch":
                    url = proxy.url if proxy is not None and mode == "linear" else es_url
                backend = await _backend(name, url, Path(tempfile.mkdtemp(prefix="para-")), weight, mode)
                label = name if weight is None else f"{name} w={weight:g}"
                if mode:
                    label = f"es {mode}" + (" emulated" if url is not None and proxy is not None
                                            and url == proxy.url else "")
                try:
                    t0 = time.perf_counter()
                    ranks = await run_recall(backend, f"recall{size}", history, embedder)
                    print(_row(size, label + _answered(backend, mode), "recall", ranks, time.perf_counter() - t0),
                          flush=True)
                    if not args.no_archival:
                        t0 = time.perf_counter()
                        ranks = await run_archival(backend, f"archival{size}", history, embedder)
                        print(_row(size, label + _answered(backend, mode), "archival", ranks,
                                   time.perf_counter() - t0), flush=True)
                finally:
                    await backend.close()
    finally:
        if proxy is not None:
            await proxy.stop()
        if noida is not None:
            noida.stop()
    print(f"({embedder.note()})")


def _answered(backend, mode: str | None) -> str:
    """" (as client)" when an Elasticsearch backend answered another way than `mode` (a refusal)."""
    hybrid = getattr(backend, "hybrid", None)
    if hybrid is None or mode is None or hybrid.last_mode in (None, mode):
        return ""
    return f" (as {hybrid.last_mode})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--backends", default="embedded,elasticsearch")
    parser.add_argument("--es-url", default=None)
    parser.add_argument("--es-hybrid", default="",
                        help="Elasticsearch rows for these ways of fusing (MNEMO_ELASTICSEARCH_HYBRID), e.g."
                             " linear,boosts,client (default: the configured one)")
    parser.add_argument("--no-archival", action="store_true")
    parser.add_argument("--meaning-weights", default="",
                        help="also the embedded backend at these meaning weights (MNEMO_SEARCH_MEANING_WEIGHT),"
                             " e.g. 0,0.5,1 (0: words alone decide, 1: meaning alone)")
    parser.add_argument("--no-cache", action="store_true", help="embed everything, keep nothing on disk")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
