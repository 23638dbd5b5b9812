"""Archival search latency and insert throughput of the embedded search backend.

For each size (default 10k, 100k, 1M passages) one agent of a fresh on-disk index receives passages of
synthetic text (30 words drawn from a Zipf distribution over a 50k-word vocabulary) with random unit
384-dimensional vectors, in batches of 1,000 (insert throughput). Then hybrid queries (3 mid-frequency
words + a random vector, page of 10, exact total) are timed: p50 / p99 over --queries queries, after
one warm-up search that loads the agent's vector index from disk (reported as "load"). Process RSS is
reported after each size (the vectors of the searched agent are held in memory: 1.5 KB per passage).

Targets: p99 <= 25 ms at 100k, <= 100 ms at 1M (2 cores).
Usage: .venv/bin/python bench/search_latency.py [--sizes 10000,100000,1000000] [--queries 300]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from mnemo.memory.search.base import PassageDoc
from mnemo.memory.search.embedded import EmbeddedBackend

DIM = 384
VOCAB = 50_000
WORDS_PER_PASSAGE = 30
BATCH = 1_000
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def rss_mb() -> float:
    try:
        import psutil

        return psutil.Process().memory_info().rss / 2**20
    except ImportError:  # peak instead of current
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def vocabulary(rng: np.random.Generator) -> list[str]:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    words = set()
    while len(words) < VOCAB:
        n = int(rng.integers(3, 10))
        words.add("".join(rng.choice(letters, n)))
    return sorted(words)


def zipf_ranks(rng: np.random.Generator, size: int) -> np.ndarray:
    weights = 1.0 / np.arange(1, VOCAB + 1) ** 1.1
    return rng.choice(VOCAB, size=size, p=weights / weights.sum())


def unit_vectors(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.standard_normal((n, DIM), dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


async def run_size(n: int, queries: int, rng: np.random.Generator, words: list[str]) -> dict[str, float]:
    root = Path(tempfile.mkdtemp(prefix="search-bench-"))
    backend = EmbeddedBackend(root)
    await backend.start()
    try:
        t0 = time.perf_counter()
        for start in range(0, n, BATCH):
            m = min(BATCH, n - start)
            ranks = zipf_ranks(rng, m * WORDS_PER_PASSAGE).reshape(m, WORDS_PER_PASSAGE)
            vecs = unit_vectors(rng, m)
            docs = [PassageDoc(id=f"p{start + i}", tenant_id="bench", agent_id="agent",
                               text=" ".join(words[r] for r in ranks[i]),
                               created_at=T0 + timedelta(seconds=start + i), vector=vecs[i].tolist())
                    for i in range(m)]
            await backend.insert_passages(docs)
        insert_s = time.perf_counter() - t0

        def query() -> tuple[str, list[float]]:
            text = " ".join(words[int(r)] for r in rng.integers(100, 10_000, 3))
            return text, unit_vectors(rng, 1)[0].tolist()

        t0 = time.perf_counter()
        text, vec = query()
        await backend.search_passages("bench", "agent", query=text, vector=vec)
        load_s = time.perf_counter() - t0
        latencies, totals = [], []
        for _ in range(queries):
            text, vec = query()
            t0 = time.perf_counter()
            page = await backend.search_passages("bench", "agent", query=text, vector=vec, limit=10)
            latencies.append((time.perf_counter() - t0) * 1000)
            totals.append(page.total)
        lat = np.array(latencies)
        return {"n": n, "insert_per_s": n / insert_s, "insert_s": insert_s, "load_s": load_s,
                "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                "mean_total": float(np.mean(totals)), "rss_mb": rss_mb(),
                # after the timed part: a blocking walk of the shard files is fine here
                "disk_mb": sum(f.stat().st_size for f in root.rglob("*") if f.is_file()) / 2**20}  # noqa: ASYNC240
    finally:
        await backend.close()
        shutil.rmtree(root, ignore_errors=True)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--queries", type=int, default=300)
    args = parser.parse_args()
    rng = np.random.default_rng(7)
    words = vocabulary(rng)
    targets = {100_000: 25.0, 1_000_000: 100.0}
    print(f"embedded backend, archival hybrid search, {DIM}-dim vectors, {args.queries} queries per size;"
          f" load average before: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    header = (f"{'passages':>10} {'insert/s':>10} {'load s':>8} {'p50 ms':>8} {'p99 ms':>8} {'target':>8}"
              f" {'avg total':>10} {'RSS MB':>8} {'disk MB':>8}")
    print(header)
    for n in (int(s) for s in args.sizes.split(",")):
        r = await run_size(n, args.queries, rng, words)
        target = targets.get(n)
        verdict = "" if target is None else ("ok" if r["p99"] <= target else "MISSED") + f" {target:.0f}"
        print(f"{n:>10,} {r['insert_per_s']:>10,.0f} {r['load_s']:>8.2f} {r['p50']:>8.1f} {r['p99']:>8.1f}"
              f" {verdict:>8} {r['mean_total']:>10,.0f} {r['rss_mb']:>8,.0f} {r['disk_mb']:>8,.0f}"
              f"   (load {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    asyncio.run(main())
