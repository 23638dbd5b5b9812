"""The vectors of one agent shard: dimension records and lazily built in-memory indexes.

The durable copy of each vector is a float32 BLOB in its row (table "messages" or "passages"); the
dimension of each table's vectors is recorded in `meta` by the first write carrying one. The
`VectorIndex` of a table is built from the rows on first use and kept in step with later writes.
Not thread-safe: the shard calls it with its lock held.
"""

from __future__ import annotations

import sqlite3

import numpy as np

from mnemo.memory.search.base import batch_dim, check_dim
from mnemo.memory.search.vectors import VectorIndex

# Rows read per step while building an index from the table.
LOAD_BATCH = 50_000


def blob(vec: np.ndarray | None) -> bytes | None:
    """A vector as stored in its row."""
    return None if vec is None else vec.astype(np.float32).tobytes()


class ShardVectors:
    """Vector dimensions and indexes of the shard whose connection is `db`, per table."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self._indexes: dict[str, VectorIndex | None] = {}
        self._roles: dict[str, int] = {}

    def clear(self) -> None:
        self._indexes.clear()

    def forget(self, kind: str) -> None:
        """Drop the in-memory index of `kind` (rebuilt from the rows on next use), e.g. after a rollback."""
        self._indexes.pop(kind, None)

    def dim(self, kind: str) -> int | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (f"dim_{kind}",)).fetchone()
        return int(row[0]) if row else None

    def claim_dim(self, kind: str, dims: set[int]) -> int | None:
        """The index's dimension after this write; DimensionMismatch if the batch disagrees with it."""
        dim = batch_dim(dims)
        current = self.dim(kind)
        if dim is None:
            return current
        if current is None:
            self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (f"dim_{kind}", str(dim)))
            return dim
        check_dim(dim, current, kind)
        return dim

    def role_code(self, role: str) -> int:
        """The label a message role has in the vector index (codes are per shard, in first-seen order)."""
        code = self._roles.get(role)
        if code is None:
            code = len(self._roles) + 1
            self._roles[role] = code
        return code

    def role_label(self, role: str) -> int:
        """The label to filter a search by `role`; -1 (matches nothing) for a role never indexed."""
        return self._roles.get(role, -1)

    def index(self, kind: str) -> VectorIndex | None:
        """The in-memory vector index of `kind` ("messages" or "passages"), loaded on first use."""
        if kind in self._indexes:
            return self._indexes[kind]
        dim = self.dim(kind)
        if dim is None:
            self._indexes[kind] = None
            return None
        cols = "rid, vec, created_at, role" if kind == "messages" else "rid, vec, created_at, ''"
        count = self.db.execute(f"SELECT count(*) FROM {kind} WHERE vec IS NOT NULL").fetchone()[0]
        index = VectorIndex(dim, capacity=max(1024, count))
        cur = self.db.execute(f"SELECT {cols} FROM {kind} WHERE vec IS NOT NULL")
        while rows := cur.fetchmany(LOAD_BATCH):
            keys = [r[0] for r in rows]
            mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
            index.upsert(keys, mat, [r[2] for r in rows], [self.role_code(r[3]) for r in rows])
        self._indexes[kind] = index
        return index

    def written(self, kind: str, dim: int | None, keys: list[int], vecs: list[np.ndarray | None],
                ts: list[float], labels: list[int]) -> None:
        """Bring a loaded index in step with rows just written (a row without a vector leaves it)."""
        if kind not in self._indexes:  # not loaded yet: it will read the rows just written
            return
        index = self._indexes[kind]
        with_vec = [i for i, v in enumerate(vecs) if v is not None]
        without = [keys[i] for i, v in enumerate(vecs) if v is None]
        if index is not None and without:
            index.remove(without)
        if not with_vec:
            return
        present = [v for v in vecs if v is not None]  # the rows of with_vec, in order
        if index is None:
            index = self._indexes[kind] = VectorIndex(dim or len(present[0]))
        index.upsert([keys[i] for i in with_vec], np.stack(present),
                     [ts[i] for i in with_vec], [labels[i] for i in with_vec])

    def removed(self, kind: str, keys: list[int]) -> None:
        """Drop deleted rows from a loaded index."""
        index = self._indexes.get(kind)
        if index is not None:
            index.remove(keys)
