"""Archival hygiene in one agent shard: lookups by id, nearest passages by cosine (deduplication),
the newest passages with their vectors (duplicate groups), bulk deletes by filter, expiry purges.

Functions of an `AgentShard`, called with its lock held (like its own methods).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mnemo.memory.search.base import PassageDoc, PassageFilter
from mnemo.memory.search.shard import PASSAGE_COLUMNS, AgentShard
from mnemo.memory.search.text import utc_epoch
from mnemo.memory.search.vectors import normalize

# ids per `IN (...)` list
CHUNK = 500


def _marks(n: int) -> str:
    return ",".join("?" * n)


def get_passages(shard: AgentShard, ids: list[str], now: float) -> list[PassageDoc]:
    out: list[PassageDoc] = []
    for i in range(0, len(ids), CHUNK):
        chunk = ids[i: i + CHUNK]
        rows = shard.db.execute(
            f"SELECT {PASSAGE_COLUMNS} FROM passages p WHERE id IN ({_marks(len(chunk))})"
            " AND (p.expires_at IS NULL OR p.expires_at > ?)", [*chunk, now]).fetchall()
        out += [shard.passage_of(r) for r in rows]
    return out


def similar_passages(shard: AgentShard, vectors: list[list[float]], min_similarity: float, limit: int,
                     now: float) -> list[list[tuple[PassageDoc, float]]]:
    """For each vector, up to `limit` live passages with cosine >= `min_similarity`, best first."""
    index = shard.vectors.index("passages")
    if index is None or not vectors:
        return [[] for _ in vectors]
    expired = shard.expired_rids(now)
    found: list[list[tuple[int, float]]] = []
    for vector in vectors:
        q = normalize(vector, index.dim)
        keys, sims, _ = index.search(q, limit + len(expired), min_score=min_similarity)
        found.append([(k, s) for k, s in zip(keys, sims, strict=True) if k not in expired][:limit])
    rids = sorted({k for hits in found for k, _ in hits})
    docs: dict[int, PassageDoc] = {}
    for i in range(0, len(rids), CHUNK):
        chunk = rids[i: i + CHUNK]
        for r in shard.db.execute(f"SELECT rid, {PASSAGE_COLUMNS} FROM passages WHERE rid IN ({_marks(len(chunk))})",
                                  chunk):
            docs[r[0]] = shard.passage_of(r[1:])
    return [[(docs[k], s) for k, s in hits if k in docs] for hits in found]


def passage_vectors(shard: AgentShard, limit: int, now: float) -> list[PassageDoc]:
    dim = shard.vectors.dim("passages")
    if dim is None:
        return []
    rows = shard.db.execute(
        f"SELECT {PASSAGE_COLUMNS}, vec FROM passages p WHERE vec IS NOT NULL"
        " AND (p.expires_at IS NULL OR p.expires_at > ?) ORDER BY created_at DESC, rid DESC LIMIT ?",
        (now, limit)).fetchall()
    out = []
    for r in rows:
        doc = shard.passage_of(r[:-1])
        doc.vector = np.frombuffer(r[-1], dtype=np.float32).tolist()
        out.append(doc)
    return out


def _filter_sql(where: PassageFilter) -> tuple[str, list[Any]]:
    clause, args = AgentShard._tag_filter(where.tags)
    if where.start is not None:
        clause += " AND p.created_at >= ?"
        args.append(utc_epoch(where.start))
    if where.end is not None:
        clause += " AND p.created_at <= ?"
        args.append(utc_epoch(where.end))
    if where.source_id:
        clause += " AND p.source_id = ?"
        args.append(where.source_id)
    if where.ids:
        clause += f" AND p.id IN ({_marks(len(where.ids))})"
        args += list(where.ids)
    return clause, args


def delete_passages(shard: AgentShard, where: PassageFilter) -> int:
    if where.empty:
        return 0
    clause, args = _filter_sql(where)
    return _delete(shard, f"DELETE FROM passages AS p WHERE 1=1{clause} RETURNING rid", args)


def purge_expired(shard: AgentShard, now: float) -> tuple[int, float | None]:
    """Delete the passages expired at `now`: how many, and when the next one expires (None: none)."""
    n = 0
    if shard.expired_rids(now):
        n = _delete(shard, "DELETE FROM passages WHERE expires_at IS NOT NULL AND expires_at <= ? RETURNING rid",
                    [now])
    row = shard.db.execute("SELECT min(expires_at) FROM passages WHERE expires_at IS NOT NULL").fetchone()
    return n, row[0]


def _delete(shard: AgentShard, sql: str, args: list[Any]) -> int:
    db = shard.db
    db.execute("BEGIN IMMEDIATE")
    try:
        rids = [r[0] for r in db.execute(sql, args).fetchall()]
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        shard.vectors.forget("passages")
        raise
    shard.vectors.removed("passages", rids)
    return len(rids)
