"""The byte layout an agent's step is written with (memory/state_records.py): where a state's bytes
hold its queue, and a queue's entries appended to them."""

from __future__ import annotations

from mnemo.memory import state_records
from mnemo.v1 import common_pb2


def _state(messages: int) -> common_pb2.AgentState:
    return common_pb2.AgentState(
        config=common_pb2.AgentConfig(id="agent-1", tenant_id="t", name="a"), summary="so far",
        blocks=[common_pb2.MemoryBlock(label="human", value="Name: Ada")], recall_count=7,
        pending_events=[common_pb2.Event(id="e1", type="assistant_message")],
        commit_outbox=[common_pb2.Message(id="m-out", role="user", text="out")],
        queue=[common_pb2.Message(id=f"m{i}", role="user", text="x" * (i * 37 % 300)) for i in range(messages)])


def test_the_queue_span_splits_a_state_into_its_queue_and_the_rest() -> None:
    state = _state(200)
    data = state.SerializeToString()
    span = state_records.queue_span(state, data)
    assert span is not None
    start, end = span
    rest = common_pb2.AgentState.FromString(data[:start] + data[end:])
    expected = common_pb2.AgentState()
    expected.CopyFrom(state)
    del expected.queue[:]
    assert rest == expected
    assert list(common_pb2.AgentState.FromString(data[start:end]).queue) == list(state.queue)


def test_appended_entries_after_the_rest_and_the_queue_read_as_the_longer_state() -> None:
    state = _state(50)
    data = state.SerializeToString()
    start, end = state_records.queue_span(state, data) or (0, 0)
    added = [common_pb2.Message(id="new-1", role="assistant", text="y" * 200),  # a two-byte length
             common_pb2.Message(id="new-2", role="tool", text="")]
    rest = data[:start] + data[end:]
    whole = rest + data[start:end] + state_records.queue_entries(added)
    state.queue.extend(added)
    assert common_pb2.AgentState.FromString(whole) == state
    # That layout (AgentStore.put_step's: the queue last) is found again from the bytes alone.
    assert state_records.queue_span(state, whole) == (len(rest), len(whole))


def test_bytes_of_another_layout_have_no_span() -> None:
    state = _state(20)
    data = state.SerializeToString()
    start, end = state_records.queue_span(state, data) or (0, 0)
    assert start < end
    queue_first = data[start:end] + data[:start] + data[end:]   # parses the same, laid out otherwise
    assert common_pb2.AgentState.FromString(queue_first) == state
    assert state_records.queue_span(state, queue_first) is None


def test_an_empty_queue_has_an_empty_span() -> None:
    state = _state(0)
    data = state.SerializeToString()
    span = state_records.queue_span(state, data)
    assert span is not None and span[0] == span[1]
    assert common_pb2.AgentState.FromString(data[:span[0]] + data[span[1]:]) == state
