"""The derived context of recall messages in one agent shard: the text of their neighbouring turns.

A message indexed without a context of its own (`auto_context`) gets its neighbours' text, kept
current as messages arrive: a new message changes the context of the messages next to it.
"""

from __future__ import annotations

import sqlite3

# Neighbouring turns folded into a message's derived context (before, after).
CONTEXT_BEFORE, CONTEXT_AFTER = 1, 1


def neighbours(db: sqlite3.Connection, rid: int, created_at: float, before: int,
               after: int) -> tuple[list[int], list[int]]:
    """The row ids of up to `before` messages before and `after` messages after one, in time order."""
    prev = db.execute(
        "SELECT rid FROM messages WHERE (created_at, rid) < (?, ?) ORDER BY created_at DESC, rid DESC"
        " LIMIT ?", (created_at, rid, before)).fetchall()
    nxt = db.execute(
        "SELECT rid FROM messages WHERE (created_at, rid) > (?, ?) ORDER BY created_at, rid LIMIT ?",
        (created_at, rid, after)).fetchall()
    return [r[0] for r in reversed(prev)], [r[0] for r in nxt]


def derive_contexts(db: sqlite3.Connection, rids: list[int]) -> None:
    """Set the derived context of new messages and of their neighbours (which gained a neighbour)."""
    if not rids:
        return
    todo: set[int] = set()
    for rid in rids:
        (created_at,) = db.execute("SELECT created_at FROM messages WHERE rid = ?", (rid,)).fetchone()
        before, after = neighbours(db, rid, created_at, CONTEXT_AFTER, CONTEXT_BEFORE)
        todo.add(rid)
        todo.update(before)
        todo.update(after)
    for rid in todo:
        row = db.execute("SELECT created_at, auto_context, context FROM messages WHERE rid = ?",
                         (rid,)).fetchone()
        if not row or not row[1]:
            continue
        before, after = neighbours(db, rid, row[0], CONTEXT_BEFORE, CONTEXT_AFTER)
        ids = before + after
        texts = dict(db.execute(
            f"SELECT rid, text FROM messages WHERE rid IN ({','.join('?' * len(ids))})", ids).fetchall()
        ) if ids else {}
        context = "\n".join(texts[i] for i in ids)
        if context != row[2]:
            db.execute("UPDATE messages SET context = ? WHERE rid = ?", (context, rid))
