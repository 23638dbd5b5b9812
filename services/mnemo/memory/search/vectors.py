"""An in-memory exact (brute-force) vector index for one agent's recall or archival memory.

Why brute force: searches always filter by agent, and one agent's memory is small (thousands to a
few hundred thousand items), where one float32 matrix-vector product (BLAS) is both exact and fast:
about 8 ms for 100k x 384 and 50 ms for 1M x 384 on 2 cores. An approximate graph index would add a
build cost on every insert, approximate answers, and trouble with filters (dates, roles, tags), which
here are plain numpy masks over the same rows. Rows are unit-normalized, so a dot product is the
cosine similarity.

The scan is a matrix-vector product, bound by memory bandwidth: one BLAS thread is as fast as two and
far steadier when other work shares the cores (100k x 384: p99 8 ms on one thread vs 68 ms on two under
load), so the process's BLAS is limited to one thread when the first index is created.
"""

from __future__ import annotations

import numpy as np

from mnemo.memory.search.base import DimensionMismatch

_blas_limited = False


def _limit_blas_threads() -> None:
    global _blas_limited
    if not _blas_limited:
        from threadpoolctl import threadpool_limits

        threadpool_limits(limits=1, user_api="blas")
        _blas_limited = True


def normalize(vector: list[float] | np.ndarray, dim: int | None = None) -> np.ndarray:
    """`vector` as a float32 unit vector; DimensionMismatch if it is not `dim` long."""
    arr = np.asarray(vector, dtype=np.float32).reshape(-1)
    if dim is not None and arr.shape[0] != dim:
        raise DimensionMismatch(f"vector has dimension {arr.shape[0]}, this index holds dimension {dim}")
    norm = float(np.linalg.norm(arr))
    return arr / norm if norm > 0 else arr


class VectorIndex:
    """Rows of unit vectors keyed by an integer id, with a timestamp and a small label per row.

    The timestamp and label (the role, for recall) let filtered searches mask rows without a lookup.
    Not thread-safe: the owning shard serializes access.
    """

    def __init__(self, dim: int, capacity: int = 1024) -> None:
        _limit_blas_threads()
        self.dim = dim
        self._mat = np.zeros((capacity, dim), dtype=np.float32)
        self._keys = np.zeros(capacity, dtype=np.int64)
        self._ts = np.zeros(capacity, dtype=np.float64)
        self._labels = np.zeros(capacity, dtype=np.int16)
        self._row: dict[int, int] = {}
        self._n = 0

    def __len__(self) -> int:
        return self._n

    @property
    def nbytes(self) -> int:
        return self._mat.nbytes + self._keys.nbytes + self._ts.nbytes + self._labels.nbytes

    def _grow(self, need: int) -> None:
        cap = self._mat.shape[0]
        if need <= cap:
            return
        new_cap = max(need, cap * 2)
        for name in ("_mat", "_keys", "_ts", "_labels"):
            old = getattr(self, name)
            new = np.zeros((new_cap, *old.shape[1:]), dtype=old.dtype)
            new[: self._n] = old[: self._n]
            setattr(self, name, new)

    def upsert(self, keys: list[int], vectors: np.ndarray, ts: list[float], labels: list[int]) -> None:
        """Add or replace rows. `vectors` must already be unit-normalized, shape (len(keys), dim)."""
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise DimensionMismatch(f"vectors have dimension {vectors.shape[-1]}, index holds {self.dim}")
        self._grow(self._n + len(keys))
        for i, key in enumerate(keys):
            row = self._row.get(key)
            if row is None:
                row = self._n
                self._n += 1
                self._row[key] = row
                self._keys[row] = key
            self._mat[row] = vectors[i]
            self._ts[row] = ts[i]
            self._labels[row] = labels[i]

    def remove(self, keys: list[int]) -> None:
        for key in keys:
            row = self._row.pop(key, None)
            if row is None:
                continue
            last = self._n - 1
            if row != last:  # move the last row into the hole
                moved = int(self._keys[last])
                self._mat[row] = self._mat[last]
                self._keys[row] = moved
                self._ts[row] = self._ts[last]
                self._labels[row] = self._labels[last]
                self._row[moved] = row
            self._n = last

    def scores_for(self, query: np.ndarray, keys: list[int]) -> dict[int, float]:
        """Cosine of `query` with the rows of `keys` (keys without a vector are left out)."""
        rows = [(k, self._row[k]) for k in keys if k in self._row]
        if not rows:
            return {}
        sims = self._mat[[r for _, r in rows]] @ query
        return {k: float(s) for (k, _), s in zip(rows, sims, strict=True)}

    def search(self, query: np.ndarray, k: int, *, min_score: float | None = None,
               start: float | None = None, end: float | None = None, label: int | None = None,
               allowed: np.ndarray | None = None) -> tuple[list[int], list[float], list[int]]:
        """The best `k` keys by cosine (best first), their scores, and every key reaching `min_score`.

        Filters: timestamps within [start, end], label equal to `label`, key in `allowed` (ids).
        Without `min_score` the third list is empty.
        """
        n = self._n
        if n == 0 or k <= 0:
            return [], [], []
        scores = self._mat[:n] @ query
        mask = None
        if start is not None:
            mask = self._ts[:n] >= start
        if end is not None:
            m = self._ts[:n] <= end
            mask = m if mask is None else mask & m
        if label is not None:
            m = self._labels[:n] == label
            mask = m if mask is None else mask & m
        if allowed is not None:
            m = np.isin(self._keys[:n], allowed)
            mask = m if mask is None else mask & m
        if min_score is not None:
            m = scores >= min_score
            mask = m if mask is None else mask & m
        rows = np.flatnonzero(mask) if mask is not None else np.arange(n)
        above = self._keys[rows].tolist() if min_score is not None else []
        if len(rows) > k:
            rows = rows[np.argpartition(-scores[rows], k - 1)[:k]]
        rows = rows[np.argsort(-scores[rows], kind="stable")]
        return self._keys[rows].tolist(), scores[rows].astype(float).tolist(), above
