"""One agent's search index on disk: an SQLite file (WAL) with FTS5 tables, plus lazy vector indexes.

One file per (tenant, agent): isolation is physical (a query can only ever read the file of the agent
it names), deleting an agent deletes a file, and agents never contend on one lock. Words go to FTS5
(BM25, Porter stemming) through external-content tables kept in sync by triggers (shard_words.py);
vectors are stored as float32 BLOBs in the same rows (the durable copy) and searched from an
in-memory `VectorIndex` built on first use (shard_vectors.py); recall messages get their neighbours'
text as context (shard_context.py). All methods are synchronous and must be called with `lock` held.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import threading
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from mnemo.memory.search import text as ranking
from mnemo.memory.search.base import PassageDoc, RecallDoc
from mnemo.memory.search.schema import PASSAGE_EXPIRY_COLUMN, PASSAGE_INDEXES, SCHEMA
from mnemo.memory.search.shard_context import CONTEXT_AFTER, CONTEXT_BEFORE, appended_contexts, derive_contexts
from mnemo.memory.search.shard_vectors import ShardVectors, blob
from mnemo.memory.search.shard_words import bm25_ceiling, count_vector_only, word_search
from mnemo.memory.search.text import (
    DEFAULT_MIN_SIMILARITY,
    MEANING_WEIGHT,
    MESSAGE_WEIGHTS,
    VECTOR_WEIGHT,
    date_words,
    fts5_query,
    utc_epoch,
)
from mnemo.memory.search.vectors import normalize

__all__ = [
    "CONTEXT_AFTER",
    "CONTEXT_BEFORE",
    "DEFAULT_MIN_SIMILARITY",
    "MESSAGE_WEIGHTS",
    "VECTOR_WEIGHT",
    "AgentShard",
]

Doc = TypeVar("Doc", RecallDoc, PassageDoc)
PASSAGE_COLUMNS = "id, text, created_iso, tags, source_id, position, metadata, expires_at"
Ranked = list[tuple[int, float]]
# Candidates taken from each side (BM25, vectors) before fusing, at least (twice the page's end if deeper).
CANDIDATE_DEPTH = 50


def _iso(when: datetime) -> str:
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.isoformat()


def _from_iso(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _in(ids: Sequence[object]) -> str:
    """The placeholders of an SQL `IN (...)` list of `ids`."""
    return ",".join("?" * len(ids))


_TEMPLATE_LOCK = threading.Lock()


_SCHEMA_DIGEST = hashlib.sha256((SCHEMA + PASSAGE_INDEXES + PASSAGE_EXPIRY_COLUMN).encode()).digest()
# Stored as the file's `user_version` once its schema is current: a shard opened again (the cache
# closes and reopens shards as agents come and go) skips the DDL, a third of the cost of opening it.
SCHEMA_VERSION = int.from_bytes(_SCHEMA_DIGEST[:4], "big") & 0x7FFFFFFF


def template_name() -> str:
    """File name of the empty shard new shards are copied from (changes with the schema)."""
    return f".shard-template-{_SCHEMA_DIGEST.hex()[:12]}.sqlite"


def _template(path: Path) -> Path:
    """`path`, built once (schema applied, WAL checkpointed into the file) if it does not exist yet."""
    if path.exists():
        return path
    with _TEMPLATE_LOCK:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            building = path.with_suffix(f".{os.getpid()}.tmp")
            AgentShard(building, "", "").close()
            os.replace(building, path)
    return path


class AgentShard:
    """The SQLite file and vector indexes of one (tenant, agent)."""

    def __init__(self, path: Path, tenant_id: str, agent_id: str,
                 min_similarity: float = DEFAULT_MIN_SIMILARITY, template: Path | None = None,
                 meaning_weight: float = MEANING_WEIGHT) -> None:
        self.path = path
        self.meaning_weight = meaning_weight
        self.tenant_id = tenant_id
        self.agent_id = agent_id
        self.min_similarity = min_similarity
        self.lock = threading.Lock()
        self.closed = False
        path.parent.mkdir(parents=True, exist_ok=True)
        if template is not None and not path.exists():
            shutil.copyfile(_template(template), path)  # an empty shard: ~10x cheaper than the DDL
        self.db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.execute("PRAGMA busy_timeout=10000")
        if self.db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            self._migrate()
        self.vectors = ShardVectors(self.db)

    def _migrate(self) -> None:
        """Bring the file's schema up to date (idempotent DDL), then mark it current."""
        self.db.executescript(SCHEMA)
        if "expires_at" not in {r[1] for r in self.db.execute("PRAGMA table_info(passages)")}:
            self.db.execute(PASSAGE_EXPIRY_COLUMN)  # a shard from before passages could expire
        self.db.executescript(PASSAGE_INDEXES)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.db.close()
            self.vectors.clear()

    # -- shared by recall and archival ------------------------------------------------------------

    def _write(self, kind: str, docs: list[Doc], upsert: Callable[[Doc, bytes | None], int],
               label: Callable[[Doc], int], then: Callable[[list[int]], None] | None = None,
               prepare: Callable[[], None] | None = None) -> None:
        """Upsert `docs` into table `kind` in one transaction (`prepare` runs first in it; `upsert`
        writes a row and returns its rid; `then` runs on the rids before commit), then bring its vector
        index in step."""
        vecs = [None if d.vector is None else normalize(d.vector) for d in docs]
        db = self.db
        db.execute("BEGIN IMMEDIATE")
        try:
            if prepare is not None:
                prepare()
            dim = self.vectors.claim_dim(kind, {len(v) for v in vecs if v is not None})
            keys = [upsert(d, blob(v)) for d, v in zip(docs, vecs, strict=True)]
            if then is not None:
                then(keys)
            db.execute("COMMIT")
        except BaseException:
            db.execute("ROLLBACK")
            self.vectors.forget(kind)
            raise
        self.vectors.written(kind, dim, keys, vecs, [utc_epoch(d.created_at) for d in docs],
                             [label(d) for d in docs])

    def _search(self, kind: str, alias: str, where: str, args: list[object], query: str,
                vector: list[float] | None, weights: str, vector_filter: Callable[[], dict[str, Any]],
                offset: int, limit: int) -> tuple[Ranked, int]:
        """One page of (rid, score) of table `kind` and the number of matches.

        With a query: BM25 and vector hits fused (`where`/`args` filter the words side,
        `vector_filter()` gives the same filter as VectorIndex.search arguments); without: newest first.
        """
        db = self.db
        match = fts5_query(query) if query else None
        if not query or (match is None and vector is None):
            if query and match is None:  # a query with no searchable word matches nothing
                return [], 0
            total = db.execute(f"SELECT count(*) FROM {kind} {alias} WHERE 1=1{where}", args).fetchone()[0]
            rows = db.execute(
                f"SELECT {alias}.rid FROM {kind} {alias} WHERE 1=1{where}"
                f" ORDER BY {alias}.created_at DESC, {alias}.rid DESC LIMIT ? OFFSET ?",
                [*args, limit, offset]).fetchall()
            return [(r[0], 0.0) for r in rows], total
        depth = max(CANDIDATE_DEPTH, 2 * (offset + limit))
        word_hits: Ranked = []
        word_total = 0
        if match is not None:
            word_hits, word_total = word_search(db, kind, alias, match, where, args, weights, depth)
        vec_hits: Ranked = []
        cosines: dict[int, float] = {}
        extra = 0
        index = self.vectors.index(kind) if vector is not None else None
        if index is not None and vector is not None:
            q = normalize(vector, index.dim)
            filters = vector_filter()
            exclude: set[int] = filters.pop("exclude", None) or set()  # rows hidden (expired passages)
            keys, sims, above = index.search(q, depth + len(exclude), min_score=self.min_similarity, **filters)
            if exclude:
                kept = [(k, sc) for k, sc in zip(keys, sims, strict=True) if k not in exclude][:depth]
                keys, sims = [k for k, _ in kept], [sc for _, sc in kept]
                above = [k for k in above if k not in exclude]
            vec_hits = list(zip(keys, sims, strict=True))
            cosines = index.scores_for(q, [k for k, _ in word_hits])
            extra = count_vector_only(db, kind, match, above)
        elif vector is not None and self.vectors.dim(kind) is not None:
            normalize(vector, self.vectors.dim(kind))
        ceiling = bm25_ceiling(db, kind, query) if vec_hits else None
        fused = ranking.fuse(word_hits, vec_hits, cosines, VECTOR_WEIGHT, ceiling, alpha=self.meaning_weight)
        return fused[offset: offset + limit], word_total + extra

    def _rows(self, columns: str, kind: str, ranked: Ranked) -> list[tuple[tuple[Any, ...], float]]:
        """The rows (`rid, <columns>`) of the ranked rids that still exist, in rank order, with their scores."""
        if not ranked:
            return []
        ids = [r for r, _ in ranked]
        rows = {r[0]: r for r in self.db.execute(
            f"SELECT rid, {columns} FROM {kind} WHERE rid IN ({_in(ids)})", ids)}
        return [(rows[rid], score) for rid, score in ranked if rid in rows]

    # -- recall -----------------------------------------------------------------------------------

    def index_messages(self, docs: list[RecallDoc]) -> None:
        derived: dict[str, str] | None = None  # message id -> context, when the batch is appended

        def prepare() -> None:  # inside the write's transaction: nothing changes the stored rows meanwhile
            nonlocal derived
            found = appended_contexts(self.db, [(d.id, utc_epoch(d.created_at), d.text, not d.context)
                                                for d in docs])
            derived = None if found is None else dict(zip([d.id for d in docs], found, strict=True))

        def upsert(d: RecallDoc, vec: bytes | None) -> int:
            context = d.context or (derived[d.id] if derived is not None else "")
            return self.db.execute(
                "INSERT INTO messages(id, role, text, context, auto_context, dates, created_at,"
                " created_iso, turn_id, extra, vec) VALUES (?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(id) DO UPDATE SET role=excluded.role, text=excluded.text,"
                " context=excluded.context, auto_context=excluded.auto_context, dates=excluded.dates,"
                " created_at=excluded.created_at, created_iso=excluded.created_iso,"
                " turn_id=excluded.turn_id, extra=excluded.extra, vec=excluded.vec RETURNING rid",
                (d.id, d.role, d.text, context, 0 if d.context else 1, date_words(d.created_at),
                 utc_epoch(d.created_at), _iso(d.created_at), d.turn_id, json.dumps(d.extra), vec),
            ).fetchone()[0]

        def contexts(keys: list[int]) -> None:
            if derived is not None:
                # Written with their contexts: only the stored message before the first new one gained
                # a neighbour (and deriving around the first new row finds the rest unchanged).
                first = min(range(len(docs)), key=lambda i: (utc_epoch(docs[i].created_at), i))
                derive_contexts(self.db, [keys[first]])
                return
            # Every new row, its own context or not: either way its neighbours' derived contexts change.
            derive_contexts(self.db, keys)

        self._write("messages", docs, upsert, lambda d: self.vectors.role_code(d.role), contexts, prepare)

    @staticmethod
    def _message_filters(start: float | None, end: float | None, role: str | None,
                         alias: str = "m") -> tuple[str, list[object]]:
        clauses: list[str] = []
        args: list[object] = []
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

        def vector_filter() -> dict[str, Any]:  # after the index is loaded: it assigns the role labels
            return {"start": start, "end": end, "label": self.vectors.role_label(role) if role else None}

        weights = ",".join(str(x) for x in MESSAGE_WEIGHTS)
        page, total = self._search("messages", "m", where, args, query, vector, weights, vector_filter,
                                   offset, limit)
        return self._load_messages(page), total

    def _load_messages(self, ranked: Ranked) -> list[tuple[RecallDoc, float]]:
        return [(RecallDoc(id=r[1], tenant_id=self.tenant_id, agent_id=self.agent_id, role=r[2], text=r[3],
                           created_at=_from_iso(r[6]), turn_id=r[7], extra=json.loads(r[8]),
                           context="" if r[5] else r[4]), score)
                for r, score in self._rows("id, role, text, context, auto_context, created_iso, turn_id, extra",
                                           "messages", ranked)]

    def count_messages(self) -> int:
        return self.db.execute("SELECT count(*) FROM messages").fetchone()[0]

    # -- archival ---------------------------------------------------------------------------------

    def insert_passages(self, docs: list[PassageDoc]) -> None:
        def upsert(d: PassageDoc, vec: bytes | None) -> int:
            db = self.db
            rid = db.execute(
                "INSERT INTO passages(id, text, created_at, created_iso, tags, source_id, position,"
                " metadata, vec, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?) ON CONFLICT(id) DO UPDATE SET"
                " text=excluded.text, created_at=excluded.created_at, created_iso=excluded.created_iso,"
                " tags=excluded.tags, source_id=excluded.source_id, position=excluded.position,"
                " metadata=excluded.metadata, vec=excluded.vec, expires_at=excluded.expires_at RETURNING rid",
                (d.id, d.text, utc_epoch(d.created_at), _iso(d.created_at), json.dumps(d.tags),
                 d.source_id, d.position, json.dumps(d.metadata), vec,
                 None if d.expires_at is None else utc_epoch(d.expires_at)),
            ).fetchone()[0]
            db.execute("DELETE FROM passage_tags WHERE rid = ?", (rid,))
            db.executemany("INSERT OR IGNORE INTO passage_tags(tag, rid) VALUES (?, ?)", [(t, rid) for t in d.tags])
            return rid

        self._write("passages", docs, upsert, lambda d: 0)

    @staticmethod
    def _tag_filter(tags: list[str] | None) -> tuple[str, list[object]]:
        tags = sorted(set(tags or []))
        if not tags:
            return "", []
        sub = f"SELECT rid FROM passage_tags WHERE tag IN ({_in(tags)}) GROUP BY rid HAVING count(*) = ?"
        return f" AND p.rid IN ({sub})", [*tags, len(tags)]

    @staticmethod
    def live_filter(now: float) -> tuple[str, list[object]]:
        """The clause that hides passages expired at `now` (alias p)."""
        return " AND (p.expires_at IS NULL OR p.expires_at > ?)", [now]

    def expired_rids(self, now: float) -> set[int]:
        """Rows past their expiry and not purged yet (a few at most: the sweep deletes them)."""
        return {r[0] for r in self.db.execute(
            "SELECT rid FROM passages WHERE expires_at IS NOT NULL AND expires_at <= ?", (now,))}

    def search_passages(self, query: str, vector: list[float] | None, tags: list[str] | None, offset: int,
                        limit: int, now: float | None = None) -> tuple[list[tuple[PassageDoc, float]], int]:
        now = utc_epoch(datetime.now(UTC)) if now is None else now
        where, args = self._tag_filter(tags)
        expired = self.expired_rids(now)
        if expired:  # (only then: a words query without a filter skips the join)
            live, live_args = self.live_filter(now)
            where, args = where + live, [*args, *live_args]

        def vector_filter() -> dict[str, Any]:
            if not tags:
                return {"allowed": None, "exclude": expired}
            return {"allowed": np.array(sorted(r[0] for r in self.db.execute(
                f"SELECT p.rid FROM passages p WHERE 1=1{where}", args)), dtype=np.int64)}

        page, total = self._search("passages", "p", where, args, query, vector, "1.0", vector_filter,
                                   offset, limit)
        return self._load_passages(page), total

    def _load_passages(self, ranked: Ranked) -> list[tuple[PassageDoc, float]]:
        return [(self.passage_of(r[1:]), score) for r, score in self._rows(PASSAGE_COLUMNS, "passages", ranked)]

    def passage_of(self, row: Sequence[Any]) -> PassageDoc:
        """A PassageDoc from the PASSAGE_COLUMNS of a row."""
        return PassageDoc(id=row[0], tenant_id=self.tenant_id, agent_id=self.agent_id, text=row[1],
                          created_at=_from_iso(row[2]), tags=json.loads(row[3]), source_id=row[4],
                          position=row[5], metadata=json.loads(row[6]),
                          expires_at=None if row[7] is None else datetime.fromtimestamp(row[7], UTC))

    def delete_passage(self, passage_id: str) -> bool:
        row = self.db.execute("DELETE FROM passages WHERE id = ? RETURNING rid", (passage_id,)).fetchone()
        if row is None:
            return False
        self.vectors.removed("passages", [row[0]])
        return True

    def count_passages(self, now: float | None = None) -> int:
        """Live passages (not expired at `now`)."""
        now = utc_epoch(datetime.now(UTC)) if now is None else now
        return self.db.execute("SELECT count(*) FROM passages WHERE expires_at IS NULL OR expires_at > ?",
                               (now,)).fetchone()[0]
