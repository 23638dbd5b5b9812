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
    """Set the derived context of new messages and of their neighbours (which gained a neighbour).

    One window of rows around each new message is read (its neighbours, and theirs): three queries
    a message, where reading each affected row and its neighbours one by one took about twenty.
    """
    if not rids:
        return
    reach_before = CONTEXT_AFTER + CONTEXT_BEFORE   # the earliest affected row's own neighbours before
    reach_after = CONTEXT_BEFORE + CONTEXT_AFTER
    contexts: dict[int, tuple[str, str]] = {}        # affected auto-context rid -> (new, stored)
    for rid in rids:
        found = db.execute("SELECT created_at FROM messages WHERE rid = ?", (rid,)).fetchone()
        if found is None:
            continue
        prev = db.execute(
            "SELECT rid, auto_context, context, text FROM messages WHERE (created_at, rid) < (?, ?)"
            " ORDER BY created_at DESC, rid DESC LIMIT ?", (found[0], rid, reach_before)).fetchall()
        rest = db.execute(
            "SELECT rid, auto_context, context, text FROM messages WHERE (created_at, rid) >= (?, ?)"
            " ORDER BY created_at, rid LIMIT ?", (found[0], rid, reach_after + 1)).fetchall()
        window = prev[::-1] + rest
        at = len(prev)   # the new message's place in the window
        for j in range(max(0, at - CONTEXT_AFTER), min(len(window), at + CONTEXT_BEFORE + 1)):
            row_id, auto, stored, _ = window[j]
            if auto and row_id not in contexts:
                near = window[max(0, j - CONTEXT_BEFORE): j] + window[j + 1: j + 1 + CONTEXT_AFTER]
                contexts[row_id] = ("\n".join(r[3] for r in near), stored)
    for row_id, (context, stored) in contexts.items():
        if context != stored:
            db.execute("UPDATE messages SET context = ? WHERE rid = ?", (context, row_id))


def appended_contexts(db: sqlite3.Connection, docs: list[tuple[str, float, str, bool]]) -> list[str] | None:
    """The derived contexts of new messages `(id, created_at, text, auto_context)` about to be written,
    when they all come after every stored message and none is stored yet (a conversation growing, the
    usual case): each is then written once with its context, instead of written and rewritten (a
    second full-text indexing). "" for a message with a context of its own. None otherwise: write them,
    then `derive_contexts`. Call inside the write's transaction; afterwards the stored message before
    the first new one still needs `derive_contexts` (it gained a neighbour after)."""
    if not docs or CONTEXT_BEFORE != 1 or CONTEXT_AFTER != 1:
        return None
    ids = [d[0] for d in docs]
    if len(set(ids)) != len(ids):
        return None
    if db.execute(f"SELECT 1 FROM messages WHERE id IN ({','.join('?' * len(ids))}) LIMIT 1", ids).fetchone():
        return None
    last = db.execute("SELECT created_at, text FROM messages ORDER BY created_at DESC, rid DESC LIMIT 1").fetchone()
    if last is not None and min(d[1] for d in docs) < last[0]:
        return None
    order = sorted(range(len(docs)), key=lambda i: (docs[i][1], i))   # new rows' rids follow `docs`
    texts = ([last[1]] if last is not None else []) + [docs[i][2] for i in order]
    first = len(texts) - len(order)
    out = [""] * len(docs)
    for j, i in enumerate(order):
        if docs[i][3]:
            at = first + j
            out[i] = "\n".join(texts[max(0, at - 1): at] + texts[at + 1: at + 2])
    return out
