"""One agent's search index on disk: an SQLite file (WAL) with FTS5 tables, plus lazy vector indexes.

One file per (tenant, agent): isolation is physical (a query can only ever read the file of the agent
it names), deleting an agent deletes a file, and agents never contend on one lock. Words go to FTS5
(BM25, Porter stemming) through external-content tables kept in sync by triggers; vectors are stored
as float32 BLOBs in the same rows (the durable copy) and searched from an in-memory `VectorIndex`
built on first use. All methods are synchronous and must be called with `lock` held.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from mnemo.memory.search.base import DimensionMismatch, PassageDoc, RecallDoc
from mnemo.memory.search.schema import SCHEMA
from mnemo.memory.search import text as ranking
from mnemo.memory.search.text import bm25_idf, date_words, fts5_query, query_terms, utc_epoch
from mnemo.memory.search.vectors import VectorIndex, normalize

# BM25 column weights for messages: the message itself, its neighbouring turns, its date words.
MESSAGE_WEIGHTS = (1.0, 0.4, 0.4)
# Neighbouring turns folded into a message's derived context (before, after).
CONTEXT_BEFORE, CONTEXT_AFTER = 1, 1
# Cosine similarity a vector hit needs to count as a match without any matching word.
DEFAULT_MIN_SIMILARITY = 0.3
# Vector weight relative to BM25 in the fusion.
VECTOR_WEIGHT = 1.0


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.isoformat()


def _from_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _blob(vec: np.ndarray | None) -> bytes | None:
    return None if vec is None else vec.astype(np.float32).tobytes()


class AgentShard:
    """The SQLite file and vector indexes of one (tenant, agent)."""

    def __init__(self, path: Path, tenant_id: str, agent_id: str,
                 min_similarity: float = DEFAULT_MIN_SIMILARITY) -> None:
        self.path = path
        self.tenant_id = tenant_id
        self.agent_id = agent_id
        self.min_similarity = min_similarity
        self.lock = threading.Lock()
        self.closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        self.db.executescript(SCHEMA)
        self._vectors: dict[str, VectorIndex | None] = {}
        self._roles: dict[str, int] = {}

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.db.close()
            self._vectors.clear()

    # -- metadata ---------------------------------------------------------------------------------

    def _dim(self, kind: str) -> int | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (f"dim_{kind}",)).fetchone()
        return int(row[0]) if row else None

    def _check_dim(self, kind: str, dims: set[int]) -> int | None:
        """The index's dimension after this write; DimensionMismatch if the batch disagrees with it."""
        current = self._dim(kind)
        if len(dims) > 1:
            raise DimensionMismatch(f"one batch mixes vector dimensions {sorted(dims)}")
        if not dims:
            return current
        (dim,) = dims
        if current is not None and dim != current:
            raise DimensionMismatch(
                f"vector dimension {dim} does not match this agent's {kind} index (dimension {current})")
        if current is None:
            self.db.execute("INSERT INTO meta(key, value) VALUES (?, ?)", (f"dim_{kind}", str(dim)))
        return dim

    def _role_code(self, role: str) -> int:
        code = self._roles.get(role)
        if code is None:
            code = len(self._roles) + 1
            self._roles[role] = code
        return code

    def _vector_index(self, kind: str) -> VectorIndex | None:
        """The in-memory vector index of `kind` ("messages" or "passages"), loaded on first use."""
        if kind in self._vectors:
            return self._vectors[kind]
        dim = self._dim(kind)
        if dim is None:
            self._vectors[kind] = None
            return None
        cols = "rid, vec, created_at, role" if kind == "messages" else "rid, vec, created_at, ''"
        count = self.db.execute(f"SELECT count(*) FROM {kind} WHERE vec IS NOT NULL").fetchone()[0]
        index = VectorIndex(dim, capacity=max(1024, count))
        batch = 50_000
        cur = self.db.execute(f"SELECT {cols} FROM {kind} WHERE vec IS NOT NULL")
        while rows := cur.fetchmany(batch):
            keys = [r[0] for r in rows]
            mat = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
            index.upsert(keys, mat, [r[2] for r in rows], [self._role_code(r[3]) for r in rows])
        self._vectors[kind] = index
        return index

    def _index_vectors(self, kind: str, dim: int | None, keys: list[int], vecs: list[np.ndarray | None],
                       ts: list[float], labels: list[int]) -> None:
        if kind not in self._vectors:  # not loaded yet: it will read the rows just written
            return
        index = self._vectors[kind]
        with_vec = [i for i, v in enumerate(vecs) if v is not None]
        without = [keys[i] for i, v in enumerate(vecs) if v is None]
        if index is not None and without:
            index.remove(without)
        if not with_vec:
            return
        if index is None:
            index = self._vectors[kind] = VectorIndex(dim or len(vecs[with_vec[0]]))
        index.upsert([keys[i] for i in with_vec], np.stack([vecs[i] for i in with_vec]),
                     [ts[i] for i in with_vec], [labels[i] for i in with_vec])

    # -- recall -----------------------------------------------------------------------------------

    def index_messages(self, docs: list[RecallDoc]) -> None:
        vecs = [None if d.vector is None else normalize(d.vector) for d in docs]
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            dim = self._check_dim("messages", {len(v) for v in vecs if v is not None})
            keys: list[int] = []
            for d, v in zip(docs, vecs, strict=True):
                row = db.execute(
                    "INSERT INTO messages(id, role, text, context, auto_context, dates, created_at,"
                    " created_iso, turn_id, extra, vec) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                    " ON CONFLICT(id) DO UPDATE SET role=excluded.role, text=excluded.text,"
                    " context=excluded.context, auto_context=excluded.auto_context, dates=excluded.dates,"
                    " created_at=excluded.created_at, created_iso=excluded.created_iso,"
                    " turn_id=excluded.turn_id, extra=excluded.extra, vec=excluded.vec RETURNING rid",
                    (d.id, d.role, d.text, d.context, 0 if d.context else 1, date_words(d.created_at),
                     utc_epoch(d.created_at), _iso(d.created_at), d.turn_id, json.dumps(d.extra), _blob(v)),
                ).fetchone()
                keys.append(row[0])
            self._derive_contexts([k for k, d in zip(keys, docs, strict=True) if not d.context])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._vectors.pop("messages", None)
            raise
        self._index_vectors("messages", dim, keys, vecs, [utc_epoch(d.created_at) for d in docs],
                            [self._role_code(d.role) for d in docs])

    def _neighbours(self, rid: int, created_at: float, before: int, after: int) -> tuple[list[int], list[int]]:
        db = self.db
        prev = db.execute(
            "SELECT rid FROM messages WHERE (created_at, rid) < (?, ?) ORDER BY created_at DESC, rid DESC"
            " LIMIT ?", (created_at, rid, before)).fetchall()
        nxt = db.execute(
            "SELECT rid FROM messages WHERE (created_at, rid) > (?, ?) ORDER BY created_at, rid LIMIT ?",
            (created_at, rid, after)).fetchall()
        return [r[0] for r in reversed(prev)], [r[0] for r in nxt]

    def _derive_contexts(self, rids: list[int]) -> None:
        """Set the derived context of new messages and of their neighbours (which gained a neighbour)."""
        if not rids:
            return
        db = self.db
        todo: set[int] = set()
        for rid in rids:
            (created_at,) = db.execute("SELECT created_at FROM messages WHERE rid = ?", (rid,)).fetchone()
            before, after = self._neighbours(rid, created_at, CONTEXT_AFTER, CONTEXT_BEFORE)
            todo.add(rid)
            todo.update(before)
            todo.update(after)
        for rid in todo:
            row = db.execute("SELECT created_at, auto_context, context FROM messages WHERE rid = ?",
                             (rid,)).fetchone()
            if not row or not row[1]:
                continue
            before, after = self._neighbours(rid, row[0], CONTEXT_BEFORE, CONTEXT_AFTER)
            ids = before + after
            texts = dict(db.execute(
                f"SELECT rid, text FROM messages WHERE rid IN ({','.join('?' * len(ids))})", ids).fetchall()
            ) if ids else {}
            context = "\n".join(texts[i] for i in ids)
            if context != row[2]:
                db.execute("UPDATE messages SET context = ? WHERE rid = ?", (context, rid))

    def _message_filters(self, start: float | None, end: float | None, role: str | None,
                         alias: str = "m") -> tuple[str, list[object]]:
        clauses, args = [], []
        if start is not None:
            clauses.append(f"{alias}.created_at >= ?")
            args.append(start)
        if end is not None:
            clauses.append(f"{alias}.created_at <= ?")
            args.append(end)
        if role:
            clauses.append(f"{alias}.role = ?")
            args.append(role)
        return "".join(f" AND {c}" for c in clauses), args

    def search_messages(self, query: str, vector: list[float] | None, start: float | None,
                        end: float | None, role: str | None, offset: int,
                        limit: int) -> tuple[list[tuple[RecallDoc, float]], int]:
        where, args = self._message_filters(start, end, role)
        match = fts5_query(query) if query else None
        if not query or (match is None and vector is None):
            if query and match is None:  # a query with no searchable word matches nothing
                return [], 0
            total = self.db.execute(f"SELECT count(*) FROM messages m WHERE 1=1{where}", args).fetchone()[0]
            rows = self.db.execute(
                f"SELECT m.rid FROM messages m WHERE 1=1{where} ORDER BY m.created_at DESC, m.rid DESC"
                " LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
            ranked = [(r[0], 0.0) for r in rows]
            return self._load_messages(ranked), total
        depth = max(50, 2 * (offset + limit))
        word_hits: list[tuple[int, float]] = []
        word_total = 0
        if match is not None:
            w = ",".join(str(x) for x in MESSAGE_WEIGHTS)
            word_hits, word_total = self._word_search("messages", "m", match, where, args, w, depth)
        vec_hits: list[tuple[int, float]] = []
        cosines: dict[int, float] = {}
        extra = 0
        index = self._vector_index("messages") if vector is not None else None
        if index is not None and vector is not None:
            q = normalize(vector, index.dim)
            label = self._roles.get(role, -1) if role else None
            keys, sims, above = index.search(q, depth, min_score=self.min_similarity, start=start,
                                             end=end, label=label)
            vec_hits = list(zip(keys, sims, strict=True))
            cosines = index.scores_for(q, [k for k, _ in word_hits])
            extra = self._count_vector_only("messages_fts", match, above)
        elif vector is not None and self._dim("messages") is not None:
            normalize(vector, self._dim("messages"))
        ceiling = self._bm25_ceiling("messages", query) if vec_hits else None
        fused = ranking.fuse(word_hits, vec_hits, cosines, VECTOR_WEIGHT, ceiling)
        page = fused[offset: offset + limit]
        return self._load_messages(page), word_total + extra

    def _word_search(self, table: str, alias: str, match: str, where: str, args: list[object],
                     weights: str, depth: int) -> tuple[list[tuple[int, float]], int]:
        """The best `depth` BM25 hits (rowid, score: higher is better) and the number of matches.

        Without filters the FTS table is queried alone (no join), which is much faster on large indexes.
        """
        fts = f"{table}_fts"
        if where:
            src = f"{fts} f JOIN {table} {alias} ON {alias}.rid = f.rowid WHERE {fts} MATCH ?{where}"
        else:
            src = f"{fts} f WHERE {fts} MATCH ?"
        hits = [(r[0], -r[1]) for r in self.db.execute(
            f"SELECT f.rowid, bm25({fts}, {weights}) AS s FROM {src} ORDER BY s LIMIT ?", [match, *args, depth])]
        total = self.db.execute(f"SELECT count(*) FROM {src}", [match, *args]).fetchone()[0]
        return hits, total

    def _bm25_ceiling(self, table: str, query: str) -> float:
        """The BM25 score of a document holding every query term once: the sum of their IDFs."""
        fts = f"{table}_fts"
        total = self.db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        ceiling = 0.0
        for term in query_terms(query):
            df = self.db.execute(f"SELECT count(*) FROM {fts} WHERE {fts} MATCH ?", (f'"{term}"',)).fetchone()[0]
            ceiling += bm25_idf(total, df)
        return ceiling

    def _count_vector_only(self, fts: str, match: str | None, keys: list[int]) -> int:
        """How many of `keys` (rows reaching the similarity threshold) match no query word."""
        if not keys or match is None:
            return len(keys)
        both = 0
        for i in range(0, len(keys), 500):
            chunk = keys[i: i + 500]
            both += self.db.execute(
                f"SELECT count(*) FROM {fts} WHERE {fts} MATCH ? AND rowid IN ({','.join('?' * len(chunk))})",
                [match, *chunk]).fetchone()[0]
        return len(keys) - both

    def _load_messages(self, ranked: list[tuple[int, float]]) -> list[tuple[RecallDoc, float]]:
        if not ranked:
            return []
        ids = [r for r, _ in ranked]
        rows = {r[0]: r for r in self.db.execute(
            "SELECT rid, id, role, text, context, auto_context, created_iso, turn_id, extra FROM messages"
            f" WHERE rid IN ({','.join('?' * len(ids))})", ids)}
        out = []
        for rid, score in ranked:
            r = rows.get(rid)
            if r is None:
                continue
            out.append((RecallDoc(id=r[1], tenant_id=self.tenant_id, agent_id=self.agent_id, role=r[2],
                                  text=r[3], created_at=_from_iso(r[6]), turn_id=r[7],
                                  extra=json.loads(r[8]), context="" if r[5] else r[4]), score))
        return out

    def count_messages(self) -> int:
        return self.db.execute("SELECT count(*) FROM messages").fetchone()[0]

    # -- archival ---------------------------------------------------------------------------------

    def insert_passages(self, docs: list[PassageDoc]) -> None:
        vecs = [None if d.vector is None else normalize(d.vector) for d in docs]
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            dim = self._check_dim("passages", {len(v) for v in vecs if v is not None})
            keys: list[int] = []
            for d, v in zip(docs, vecs, strict=True):
                rid = db.execute(
                    "INSERT INTO passages(id, text, created_at, created_iso, tags, source_id, position,"
                    " metadata, vec) VALUES (?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET"
                    " text=excluded.text, created_at=excluded.created_at, created_iso=excluded.created_iso,"
                    " tags=excluded.tags, source_id=excluded.source_id, position=excluded.position,"
                    " metadata=excluded.metadata, vec=excluded.vec RETURNING rid",
                    (d.id, d.text, utc_epoch(d.created_at), _iso(d.created_at), json.dumps(d.tags),
                     d.source_id, d.position, json.dumps(d.metadata), _blob(v)),
                ).fetchone()[0]
                keys.append(rid)
                db.execute("DELETE FROM passage_tags WHERE rid = ?", (rid,))
                db.executemany("INSERT OR IGNORE INTO passage_tags(tag, rid) VALUES (?, ?)",
                               [(t, rid) for t in d.tags])
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self._vectors.pop("passages", None)
            raise
        self._index_vectors("passages", dim, keys, vecs, [utc_epoch(d.created_at) for d in docs],
                            [0] * len(docs))

    def _tag_filter(self, tags: list[str] | None) -> tuple[str, list[object]]:
        tags = sorted(set(tags or []))
        if not tags:
            return "", []
        sub = (f"SELECT rid FROM passage_tags WHERE tag IN ({','.join('?' * len(tags))}) GROUP BY rid"
               " HAVING count(*) = ?")
        return f" AND p.rid IN ({sub})", [*tags, len(tags)]

    def search_passages(self, query: str, vector: list[float] | None, tags: list[str] | None,
                        offset: int, limit: int) -> tuple[list[tuple[PassageDoc, float]], int]:
        where, args = self._tag_filter(tags)
        match = fts5_query(query) if query else None
        if not query or (match is None and vector is None):
            if query and match is None:
                return [], 0
            total = self.db.execute(f"SELECT count(*) FROM passages p WHERE 1=1{where}", args).fetchone()[0]
            rows = self.db.execute(
                f"SELECT p.rid FROM passages p WHERE 1=1{where} ORDER BY p.created_at DESC, p.rid DESC"
                " LIMIT ? OFFSET ?", [*args, limit, offset]).fetchall()
            return self._load_passages([(r[0], 0.0) for r in rows]), total
        depth = max(50, 2 * (offset + limit))
        word_hits: list[tuple[int, float]] = []
        word_total = 0
        if match is not None:
            word_hits, word_total = self._word_search("passages", "p", match, where, args, "1.0", depth)
        vec_hits: list[tuple[int, float]] = []
        cosines: dict[int, float] = {}
        extra = 0
        index = self._vector_index("passages") if vector is not None else None
        if index is not None and vector is not None:
            q = normalize(vector, index.dim)
            allowed = None
            if tags:
                allowed = np.array(sorted(r[0] for r in self.db.execute(
                    f"SELECT p.rid FROM passages p WHERE 1=1{where}", args)), dtype=np.int64)
            keys, sims, above = index.search(q, depth, min_score=self.min_similarity, allowed=allowed)
            vec_hits = list(zip(keys, sims, strict=True))
            cosines = index.scores_for(q, [k for k, _ in word_hits])
            extra = self._count_vector_only("passages_fts", match, above)
        elif vector is not None and self._dim("passages") is not None:
            normalize(vector, self._dim("passages"))
        ceiling = self._bm25_ceiling("passages", query) if vec_hits else None
        fused = ranking.fuse(word_hits, vec_hits, cosines, VECTOR_WEIGHT, ceiling)
        return self._load_passages(fused[offset: offset + limit]), word_total + extra

    def _load_passages(self, ranked: list[tuple[int, float]]) -> list[tuple[PassageDoc, float]]:
        if not ranked:
            return []
        ids = [r for r, _ in ranked]
        rows = {r[0]: r for r in self.db.execute(
            "SELECT rid, id, text, created_iso, tags, source_id, position, metadata FROM passages"
            f" WHERE rid IN ({','.join('?' * len(ids))})", ids)}
        out = []
        for rid, score in ranked:
            r = rows.get(rid)
            if r is None:
                continue
            out.append((PassageDoc(id=r[1], tenant_id=self.tenant_id, agent_id=self.agent_id, text=r[2],
                                   created_at=_from_iso(r[3]), tags=json.loads(r[4]), source_id=r[5],
                                   position=r[6], metadata=json.loads(r[7])), score))
        return out

    def delete_passage(self, passage_id: str) -> bool:
        row = self.db.execute("DELETE FROM passages WHERE id = ? RETURNING rid", (passage_id,)).fetchone()
        if row is None:
            return False
        index = self._vectors.get("passages")
        if index is not None:
            index.remove([row[0]])
        return True

    def count_passages(self) -> int:
        return self.db.execute("SELECT count(*) FROM passages").fetchone()[0]
