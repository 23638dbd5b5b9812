"""Derived recall contexts (shard_context.derive_contexts) against a from-scratch computation.

Messages arrive in random batches, in or out of time order (imports, equal timestamps), some with a
context of their own; after each batch every auto-context message must hold its neighbours' text.
"""

from __future__ import annotations

import random
import sqlite3

import pytest

from mnemo.memory.search.schema import SCHEMA
from mnemo.memory.search.shard_context import CONTEXT_AFTER, CONTEXT_BEFORE, derive_contexts


def _expected(db: sqlite3.Connection) -> dict[int, str]:
    rows = db.execute("SELECT rid, auto_context, text FROM messages ORDER BY created_at, rid").fetchall()
    out = {}
    for i, (rid, auto, _) in enumerate(rows):
        if auto:
            near = rows[max(0, i - CONTEXT_BEFORE): i] + rows[i + 1: i + 1 + CONTEXT_AFTER]
            out[rid] = "\n".join(r[2] for r in near)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_derived_contexts_match_neighbours_after_every_batch(seed: int) -> None:
    rng = random.Random(seed)
    db = sqlite3.connect(":memory:", isolation_level=None)
    db.executescript(SCHEMA)
    n = 0
    for _ in range(25):
        batch = []
        for _ in range(rng.randint(1, 6)):
            n += 1
            # Mostly appended in time order; sometimes an older message (an import) or a tie.
            created = n if rng.random() < 0.7 else rng.choice([rng.uniform(0, n), float(rng.randint(0, n))])
            own = f"own context {n}" if rng.random() < 0.2 else ""
            (rid,) = db.execute(
                "INSERT INTO messages(id, role, text, context, auto_context, dates, created_at, created_iso)"
                " VALUES (?,?,?,?,?,?,?,?) RETURNING rid",
                (f"m{n}", "user", f"text {n}", own, 0 if own else 1, "", created, "")).fetchone()
            batch.append((rid, own))
        derive_contexts(db, [rid for rid, _ in batch])  # as AgentShard.index_messages: every new row
        stored = dict(db.execute("SELECT rid, context FROM messages WHERE auto_context = 1").fetchall())
        assert stored == _expected(db)
    own_rows = db.execute("SELECT context FROM messages WHERE auto_context = 0").fetchall()
    assert all(c.startswith("own context") for (c,) in own_rows)  # never overwritten


def test_a_message_with_its_own_context_still_changes_its_neighbours(tmp_path) -> None:
    """Regression: a message indexed with a context of its own (an import) left its neighbours'
    derived contexts as they were before it arrived."""
    from datetime import UTC, datetime, timedelta

    from mnemo.memory.search.base import RecallDoc
    from mnemo.memory.search.shard import AgentShard

    t0 = datetime(2026, 1, 1, tzinfo=UTC)

    def doc(n: int, minute: int, context: str = "") -> RecallDoc:
        return RecallDoc(id=f"m{n}", tenant_id="t", agent_id="a", role="user", text=f"text {n}",
                         created_at=t0 + timedelta(minutes=minute), context=context)

    shard = AgentShard(tmp_path / "a.sqlite", "t", "a")
    try:
        shard.index_messages([doc(1, 0), doc(2, 10)])
        shard.index_messages([doc(3, 5, context="imported with its own context")])
        got = dict(shard.db.execute("SELECT id, context FROM messages").fetchall())
    finally:
        shard.close()
    assert got == {"m1": "text 3", "m2": "text 3", "m3": "imported with its own context"}


@pytest.mark.parametrize("seed", range(8))
def test_batches_indexed_through_the_shard_hold_their_neighbours_contexts(tmp_path, seed: int) -> None:
    """AgentShard.index_messages writes an appended batch with its contexts worked out beforehand and
    any other batch (older messages, re-indexed ids) by deriving them after: either way every
    auto-context message ends up holding its neighbours' text."""
    from datetime import UTC, datetime, timedelta

    from mnemo.memory.search.base import RecallDoc
    from mnemo.memory.search.shard import AgentShard

    rng = random.Random(seed)
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    shard = AgentShard(tmp_path / "a.sqlite", "t", "a")
    n = 0
    sent: list[RecallDoc] = []
    try:
        for _ in range(30):
            batch = []
            for _ in range(rng.randint(1, 8)):
                if sent and rng.random() < 0.1:  # a message indexed again as it was (a redelivery)
                    batch.append(rng.choice(sent))
                    continue
                n += 1
                # Mostly appended, as a conversation grows (ties included); sometimes older (an import).
                minute = n + rng.choice([0, 0, 1]) if rng.random() < 0.8 else rng.uniform(0, n)
                own = f"own context {n}" if rng.random() < 0.15 else ""
                batch.append(RecallDoc(id=f"m{n}", tenant_id="t", agent_id="a", role="user", text=f"text {n}",
                                       created_at=t0 + timedelta(minutes=minute), context=own))
            sent.extend(batch)
            shard.index_messages(batch)
            stored = dict(shard.db.execute("SELECT rid, context FROM messages WHERE auto_context = 1").fetchall())
            assert stored == _expected(shard.db)
    finally:
        shard.close()
