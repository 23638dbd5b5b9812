"""Word search in one agent shard: SQLite FTS5 (BM25) queries over `<table>_fts`."""

from __future__ import annotations

import sqlite3

from mnemo.memory.search.text import bm25_idf, query_terms

# Row ids per `rowid IN (...)` query when counting matches among vector hits.
CHUNK = 500


def word_search(db: sqlite3.Connection, table: str, alias: str, match: str, where: str, args: list[object],
                weights: str, depth: int) -> tuple[list[tuple[int, float]], int]:
    """The best `depth` BM25 hits (rowid, score: higher is better) and the number of matches.

    Without filters the FTS table is queried alone (no join), which is much faster on large indexes.
    """
    fts = f"{table}_fts"
    if where:
        src = f"{fts} f JOIN {table} {alias} ON {alias}.rid = f.rowid WHERE {fts} MATCH ?{where}"
    else:
        src = f"{fts} f WHERE {fts} MATCH ?"
    hits = [(r[0], -r[1]) for r in db.execute(
        f"SELECT f.rowid, bm25({fts}, {weights}) AS s FROM {src} ORDER BY s LIMIT ?", [match, *args, depth])]
    total = db.execute(f"SELECT count(*) FROM {src}", [match, *args]).fetchone()[0]
    return hits, total


def bm25_ceiling(db: sqlite3.Connection, table: str, query: str) -> float:
    """The BM25 score of a document holding every query term once: the sum of their IDFs."""
    fts = f"{table}_fts"
    total = db.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    ceiling = 0.0
    for term in query_terms(query):
        df = db.execute(f"SELECT count(*) FROM {fts} WHERE {fts} MATCH ?", (f'"{term}"',)).fetchone()[0]
        ceiling += bm25_idf(total, df)
    return ceiling


def count_vector_only(db: sqlite3.Connection, table: str, match: str | None, keys: list[int]) -> int:
    """How many of `keys` (rows reaching the similarity threshold) match no query word."""
    if not keys or match is None:
        return len(keys)
    fts = f"{table}_fts"
    both = 0
    for i in range(0, len(keys), CHUNK):
        chunk = keys[i: i + CHUNK]
        both += db.execute(
            f"SELECT count(*) FROM {fts} WHERE {fts} MATCH ? AND rowid IN ({','.join('?' * len(chunk))})",
            [match, *chunk]).fetchone()[0]
    return len(keys) - both
