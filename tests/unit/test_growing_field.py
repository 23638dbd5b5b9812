"""Renders of a queue that grows at its end are reused from one step to the next, and whatever else
happens to the queue (edits, removals, evictions, other agents) never serves a stale render."""

from __future__ import annotations

import random

import orjson

from mnemo.common.growing_field import GrowingFieldMemo, entry_offset
from mnemo.llm_proxy.convert import MessageDicts, chat_call
from mnemo.orchestrator.context import Assembled, RenderCache, chat_dict, to_chat_message
from mnemo.v1 import common_pb2, llm_pb2

QUEUE = common_pb2.AgentState.DESCRIPTOR.fields_by_name["queue"].number


def _message(i: int) -> common_pb2.Message:
    if i % 3 == 1:
        return common_pb2.Message(id=f"m{i}", role="assistant", tool_calls=[common_pb2.ToolCall(
            id=f"c{i}", name="send_message", arguments=f'{{"message": "reply {i}"}}')])
    return common_pb2.Message(id=f"m{i}", role="user", text=f"message {i}", created_at="2026-12-06T03:00:00Z")


def _state(n: int, agent: str = "a1") -> common_pb2.AgentState:
    state = common_pb2.AgentState(summary="s", blocks=[common_pb2.MemoryBlock(label="human", value="v")])
    state.config.tenant_id, state.config.id = "t1", agent
    state.queue.extend(_message(i) for i in range(n))
    return state


def _counting_render() -> tuple[list[str], object]:
    rendered: list[str] = []

    def render(m: common_pb2.Message) -> str:
        rendered.append(m.id)
        return f"{m.id}:{m.text}:{m.tool_calls[0].arguments if m.tool_calls else ''}"
    return rendered, render


def _expected(state: common_pb2.AgentState) -> list[str]:
    return [f"{m.id}:{m.text}:{m.tool_calls[0].arguments if m.tool_calls else ''}" for m in state.queue]


def test_a_growing_queue_renders_only_its_new_messages() -> None:
    memo: GrowingFieldMemo[common_pb2.Message, str] = GrowingFieldMemo(QUEUE)
    rendered, render = _counting_render()
    state = _state(30)
    assert memo.renders("a1", state.SerializeToString(), state.queue, render) == _expected(state)
    assert len(rendered) == 30
    state.queue.extend(_message(i) for i in range(30, 33))
    state.revision += 1   # other fields change from step to step
    rendered.clear()
    assert memo.renders("a1", state.SerializeToString(), state.queue, render) == _expected(state)
    assert rendered == ["m30", "m31", "m32"] and memo.reused == 30


def test_any_other_change_renders_again_and_never_serves_a_stale_render() -> None:
    """Random edits, removals at either end, other agents: every answer equals rendering afresh."""
    rng = random.Random(7)
    memo: GrowingFieldMemo[common_pb2.Message, str] = GrowingFieldMemo(QUEUE, max_items=200)
    _, render = _counting_render()
    states = {agent: _state(rng.randrange(0, 20), agent) for agent in ("a1", "a2", "a3")}
    serial = 100
    for _ in range(400):
        agent = rng.choice(list(states))
        state = states[agent]
        op = rng.random()
        if op < 0.5:
            state.queue.extend(_message(serial + i) for i in range(rng.randrange(1, 4)))
            serial += 4
        elif op < 0.65 and state.queue:   # a reply rewritten in place: same id, new text
            m = state.queue[rng.randrange(len(state.queue))]
            if m.tool_calls:
                m.tool_calls[0].arguments = f'{{"message": "edited {serial}"}}'
            else:
                m.text = f"edited {serial}"
            serial += 1
        elif op < 0.8 and state.queue:    # evicted from the front
            del state.queue[:rng.randrange(1, len(state.queue) + 1)]
        elif op < 0.9 and state.queue:    # the last messages removed
            del state.queue[-rng.randrange(1, len(state.queue) + 1):]
        else:
            state.summary += "."
        assert memo.renders(agent, state.SerializeToString(), state.queue, render) == _expected(state)
    assert memo.reused > 0
    assert memo._items <= 200


def test_entries_are_found_after_the_fields_before_them() -> None:
    state = _state(3)
    data = state.SerializeToString()
    first = entry_offset(data, QUEUE, 0)
    assert first is not None and data[first] == QUEUE << 3 | 2
    size = data[first + 1]   # a short message: a one-byte length
    assert common_pb2.Message.FromString(data[first + 2:first + 2 + size]).id == "m0"
    assert entry_offset(data, QUEUE, 3) is None
    assert entry_offset(_state(0).SerializeToString(), QUEUE, 0) is None


def test_the_step_request_from_the_agents_queue_equals_one_built_message_by_message() -> None:
    cache = RenderCache()
    state = _state(12)
    for step in range(3):
        queue = list(state.queue)
        asm = Assembled(system_text=f"sys {step}", system_tokens=1, tools_tokens=0, queue=queue,
                        queue_tokens=[1] * len(queue), inputs=[], input_tokens=[], base_tokens=0)
        got = asm.chat_request(cache, cache.queue_entries(state), model="m")
        assert got == llm_pb2.ChatRequest(model="m", messages=[
            llm_pb2.ChatMessage(role="system", content=f"sys {step}"),
            *(to_chat_message(chat_dict(m), m) for m in queue)])
        state.queue.extend([_message(100 + step)])
    assert cache.reused == 12 + 13


def test_the_proxy_reuses_an_agents_messages_and_sees_an_edit() -> None:
    dicts = MessageDicts()
    req = llm_pb2.ChatRequest(model="m", tenant_id="t1", agent_id="a1", purpose="agent", messages=[
        llm_pb2.ChatMessage(role="system", content="sys 1"),
        *(llm_pb2.ChatMessage(role="user", content=f"message {i}") for i in range(20))])
    first = dicts.of_request(req)
    req.messages[0].content = "sys 2"
    req.messages.append(llm_pb2.ChatMessage(role="user", content="message 20"))
    second = dicts.of_request(req)
    assert dicts.reused == 20
    assert [d for d, _ in second] == [{"role": "system", "content": "sys 2"}, *(d for d, _ in first[1:]),
                                      {"role": "user", "content": "message 20"}]
    req.messages[5].content = "edited"
    call = chat_call(req)
    assert call.messages[5] == {"role": "user", "content": "edited"}
    assert [orjson.loads(j) for j in call.messages_json] == call.messages


def test_a_step_counts_the_tokens_of_only_the_messages_added_since_the_agents_last_step() -> None:
    cache = RenderCache()
    asked: list[str] = []

    def count(model: str, m: common_pb2.Message) -> int:
        asked.append(m.id)
        return len(m.SerializeToString())

    state = _state(30)
    first = cache.queue_tokens(state, state.SerializeToString(), "m", count)
    assert len(asked) == 30 and first == [len(m.SerializeToString()) for m in state.queue]
    asked.clear()
    state.queue.extend([_message(30), _message(31)])
    second = cache.queue_tokens(state, state.SerializeToString(), "m", count)
    assert asked == ["m30", "m31"] and second[:30] == first and len(second) == 32
    asked.clear()
    state.queue[4].text = "an edited message, counted again"
    third = cache.queue_tokens(state, state.SerializeToString(), "m", count)
    assert len(asked) == 32 and third[4] == len(state.queue[4].SerializeToString())
    asked.clear()
    cache.queue_tokens(state, state.SerializeToString(), "another-model", count)
    assert len(asked) == 32  # counts are per model
