"""The product's local embedder (all-MiniLM-L6-v2, int8) with an on-disk cache of vectors, for benches.

Vectors are cached by text under `<cache dir>/bench/vectors-<model>.sqlite` (`MNEMO_CACHE_DIR`, else
`~/.cache/mnemo`), so a bench re-run on the same texts embeds nothing; `--no-cache` style callers pass
`use_cache=False`. Recall vectors are derived as the memory service's indexer derives them: each
message embedded once, alone, then mixed with its neighbours' (`recall.contextual_vectors`).
"""

from __future__ import annotations

import hashlib
import sqlite3
import time
from pathlib import Path

import numpy as np

from mnemo.llm_proxy.embedding_model import cache_dir
from mnemo.llm_proxy.embeddings import DIM, MODEL_NAME, LocalEmbedder
from mnemo.memory.recall import contextual_vectors


def _key(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


class CachedEmbedder:
    """`embed(texts)` as an (n, 384) float32 array, from the disk cache where it can."""

    def __init__(self, use_cache: bool = True) -> None:
        self.embedder = LocalEmbedder(cache_size=0)
        self.path: Path | None = None
        self.db: sqlite3.Connection | None = None
        self.embedded = 0      # texts run through the model (not found in the cache)
        self.seconds = 0.0
        if use_cache:
            self.path = cache_dir() / "bench" / f"vectors-{MODEL_NAME}-{self.embedder.model.precision}.sqlite"
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(str(self.path))
            self.db.execute("CREATE TABLE IF NOT EXISTS v (k TEXT PRIMARY KEY, vec BLOB)")

    def embed(self, texts: list[str], chunk: int = 2_000) -> np.ndarray:
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        keys = [_key(t) for t in texts]
        found: dict[str, np.ndarray] = {}
        if self.db is not None:
            wanted = list(dict.fromkeys(keys))
            for i in range(0, len(wanted), 500):
                part = wanted[i: i + 500]
                for k, vec in self.db.execute(f"SELECT k, vec FROM v WHERE k IN ({','.join('?' * len(part))})", part):
                    found[k] = np.frombuffer(vec, dtype=np.float32)
        missing = list(dict.fromkeys(t for t, k in zip(texts, keys, strict=True) if k not in found))
        for i in range(0, len(missing), chunk):
            part = missing[i: i + chunk]
            t0 = time.perf_counter()
            vecs, _ = self.embedder.embed(part)
            self.seconds += time.perf_counter() - t0
            self.embedded += len(part)
            rows = [(_key(t), v.astype(np.float32).tobytes()) for t, v in zip(part, vecs, strict=True)]
            found.update((k, np.frombuffer(b, dtype=np.float32)) for k, b in rows)
            if self.db is not None:
                self.db.executemany("INSERT OR REPLACE INTO v(k, vec) VALUES (?, ?)", rows)
                self.db.commit()
        for i, k in enumerate(keys):
            out[i] = found[k]
        return out

    def recall_vectors(self, texts: list[str]) -> np.ndarray:
        """The recall vectors of a conversation's messages (in time order), as the indexer makes them."""
        return contextual_vectors(self.embed(texts))

    def note(self) -> str:
        where = f"cached in {self.path}" if self.path else "not cached"
        return f"{self.embedded} texts embedded in {self.seconds:.0f}s, vectors {where}"
