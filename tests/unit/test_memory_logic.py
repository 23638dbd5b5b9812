"""Pure logic of the memory service: chunking, core-memory blocks, step application, date ranges."""

from __future__ import annotations

from itertools import pairwise

import pytest

from mnemo.common.errors import FailedPrecondition, InvalidArgument, NotFound
from mnemo.memory import blocks
from mnemo.memory.chunking import Chunker
from mnemo.memory.recall import parse_range, searchable_text
from mnemo.memory.steps import apply_step
from mnemo.v1 import common_pb2, memory_pb2


def chunk_all(text: str, size: int, overlap: int, piece: int) -> list[str]:
    c = Chunker(size, overlap)
    out: list[str] = []
    for i in range(0, len(text), piece):
        out += list(c.feed(text[i:i + piece]))
    return out + list(c.finish())


def test_chunks_respect_size_cover_text_and_overlap():
    text = "\n\n".join(" ".join(f"Sentence {p}.{s} says something." for s in range(8)) for p in range(30))
    chunks = chunk_all(text, 300, 60, 77)
    assert all(len(c) <= 300 for c in chunks)
    words = set(text.split())
    assert words == set(" ".join(chunks).split())  # nothing lost
    for a, b in pairwise(chunks):
        assert b.split()[0] in a  # consecutive chunks overlap
    # Cuts fall on sentence ends, not mid-word.
    assert all(c.endswith(".") for c in chunks)


def test_chunker_same_result_whatever_the_feed_size():
    text = "word " * 2000
    assert chunk_all(text, 200, 40, 1) == chunk_all(text, 200, 40, 10_000)


def test_chunker_short_text_and_bad_settings():
    assert chunk_all("just this", 100, 20, 3) == ["just this"]
    assert chunk_all("   ", 100, 20, 3) == []
    with pytest.raises(ValueError):
        Chunker(100, 60)
    with pytest.raises(ValueError):
        Chunker(10, 0)


def test_block_edits_and_limits():
    state = common_pb2.AgentState(blocks=[blocks.make_block("human", "Name: Ana", 30)])
    assert blocks.edit_block(state, "human", "append", "Likes tea").value == "Name: Ana\nLikes tea"
    assert blocks.edit_block(state, "human", "replace", "coffee", old="tea").value == "Name: Ana\nLikes coffee"
    with pytest.raises(FailedPrecondition, match="31 characters; its limit is 30"):
        blocks.edit_block(state, "human", "set", "x" * 31)
    with pytest.raises(InvalidArgument, match="not found"):
        blocks.edit_block(state, "human", "replace", "y", old="juice")
    with pytest.raises(NotFound):
        blocks.edit_block(state, "nope", "append", "y")
    with pytest.raises(InvalidArgument):
        blocks.edit_block(state, "bad label", "set", "y")
    assert blocks.edit_block(state, "new", "set", "v").limit == blocks.DEFAULT_LIMIT


def test_apply_step():
    old = common_pb2.Message(id="m0", role="user", text="old")
    state = common_pb2.AgentState(queue=[old], summary="keep", archival_count=1, recall_count=1)
    req = memory_pb2.CommitStepRequest(step_id="t:1", evict_message_ids=["m0", "unknown"], archival_delta=2,
                                       messages=[common_pb2.Message(role="user", text="hi"),
                                                 common_pb2.Message(role="assistant", text="yo", id="fixed")])
    committed = apply_step(state, req)
    assert [m.text for m in state.queue] == ["hi", "yo"] and state.evicted_total == 1
    assert committed[0].id.startswith("msg-") and committed[1].id == "fixed"
    assert state.summary == "keep" and state.archival_count == 3 and state.recall_count == 3
    assert state.last_user_message_at == committed[0].created_at and state.last_step_id == "t:1"
    assert not state.last_memory_edit_at
    with pytest.raises(InvalidArgument):
        apply_step(state, memory_pb2.CommitStepRequest(step_id="t:2", messages=[common_pb2.Message(role="robot")]))


def test_parse_range_end_date_is_inclusive():
    lo, hi = parse_range("2024-03-01", "2024-03-01")
    assert lo is not None and hi is not None and (hi - lo).total_seconds() == pytest.approx(86400, abs=0.001)
    with pytest.raises(InvalidArgument):
        parse_range("2024-13-01", "")
    with pytest.raises(InvalidArgument):
        parse_range("2024-03-02", "2024-03-01")


def test_searchable_text_includes_the_reply():
    m = common_pb2.Message(role="assistant", text="inner", tool_calls=[
        common_pb2.ToolCall(name="send_message", arguments='{"message": "Hello Ana"}'),
        common_pb2.ToolCall(name="archival_memory_search", arguments='{"query": "dogs"}')])
    text = searchable_text(m)
    assert "inner" in text and "Hello Ana" in text and "archival_memory_search" in text
