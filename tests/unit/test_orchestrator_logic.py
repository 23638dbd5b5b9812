"""Pure logic of the orchestrator: argument validation, eviction planning, truncation, counting."""

from __future__ import annotations

import json

import pytest

from mnemo.common.config import Settings
from mnemo.orchestrator import compaction, packing
from mnemo.orchestrator.context import ContextAssembler, chat_dict
from mnemo.orchestrator.executor import StepMemory, truncate
from mnemo.orchestrator.functions import OPENAI_TOOLS, SCHEMAS, FunctionError, fingerprint, parse_call
from mnemo.orchestrator.limits import resolve_limits
from mnemo.orchestrator.presets import DEFAULT_PRESET, builtin
from mnemo.orchestrator.tokens import TokenCounter
from mnemo.v1 import common_pb2


def test_every_function_takes_request_heartbeat():
    assert {s["name"] for s in SCHEMAS} == {
        "send_message", "core_memory_append", "core_memory_replace", "conversation_search",
        "conversation_search_date", "archival_memory_insert", "archival_memory_search", "pause_heartbeats"}
    for s in SCHEMAS:
        assert "request_heartbeat" in s["parameters"]["required"]


def test_parse_call_accepts_valid_and_reads_heartbeat():
    c = parse_call("c1", "send_message", json.dumps({"message": "hi", "request_heartbeat": True}))
    assert c.args == {"message": "hi"} and c.heartbeat is True
    c = parse_call("c2", "conversation_search", '{"query": "x", "page": "2"}')
    assert c.args["page"] == 2 and c.heartbeat is False


@pytest.mark.parametrize("name,args,fragment", [
    ("nope", "{}", "unknown function"),
    ("send_message", "{not json", "not valid JSON"),
    ("send_message", "[1]", "must be a JSON object"),
    ("send_message", "{}", "missing required argument(s): message"),
    ("send_message", '{"message": 3}', "must be of type string"),
    ("send_message", '{"message": "x", "bogus": 1}', "unexpected argument(s) bogus"),
    ("conversation_search", '{"query": "x", "page": -1}', "must be >= 0"),
])
def test_parse_call_errors_explain_the_problem(name, args, fragment):
    with pytest.raises(FunctionError, match=None) as info:
        parse_call("c", name, args)
    assert fragment in str(info.value)


def test_fingerprint_ignores_key_order():
    assert fingerprint("f", '{"a": 1, "b": 2}') == fingerprint("f", '{"b":2,"a":1}')
    assert fingerprint("f", '{"a": 1}') != fingerprint("f", '{"a": 2}')


def test_plan_eviction_never_splits_call_and_return_and_keeps_last():
    roles = ["user", "assistant", "tool", "tool", "system", "assistant", "tool", "user", "assistant", "tool"]
    tokens = [10] * len(roles)
    k = compaction.plan_eviction(roles, tokens, excess=25, keep_last=3)
    assert k == 4 and roles[k] != "tool"
    k = compaction.plan_eviction(roles, tokens, excess=1000, keep_last=3)
    assert k <= len(roles) - 3 and roles[k] != "tool"
    assert compaction.plan_eviction(roles, tokens, excess=0, keep_last=3) == 0
    # keep_last forces a boundary before an assistant/tool pair: back off rather than orphan.
    assert compaction.plan_eviction(["user", "assistant", "tool"], [10, 10, 10], 100, keep_last=1) == 1


def test_truncate_adds_a_note():
    out = truncate("x" * 500, 100, "call again with page=1")
    assert len(out) <= 100 and "page=1" in out and "truncated" in out
    assert truncate("short", 100, "n") == "short"


def test_step_memory_limits_and_labels():
    mem = StepMemory([common_pb2.MemoryBlock(label="human", value="a", limit=5)])
    mem.set_value("human", "abcde")
    with pytest.raises(FunctionError, match="over its limit of 5"):
        mem.set_value("human", "abcdef")
    with pytest.raises(FunctionError, match="no core memory block labelled 'x'"):
        mem.block("x")
    assert [b.label for b in mem.changed_blocks()] == ["human"]


def test_limits_resolution_order():
    s = Settings(orchestrator_max_steps=7)
    assert resolve_limits(common_pb2.AgentLimits(), s).max_steps == 7
    assert resolve_limits(common_pb2.AgentLimits(max_steps=3), s).max_steps == 3
    assert resolve_limits(common_pb2.AgentLimits(max_steps=3), s, turn_max_steps=2).max_steps == 2
    lim = resolve_limits(common_pb2.AgentLimits(compaction_target_fraction=0.3), s)
    assert lim.compaction_target_fraction == 0.3 and lim.memory_warning_fraction == 0.7


def test_assembled_count_matches_a_whole_request_count():
    counter = TokenCounter()
    asm = ContextAssembler(counter)
    state = common_pb2.AgentState(blocks=[common_pb2.MemoryBlock(label="persona", value="I am Sam.", limit=2000)],
                                  recall_count=4)
    queue = [common_pb2.Message(id="1", role="user", text="hello", created_at="2026-01-01T00:00:00Z"),
             common_pb2.Message(id="2", role="assistant", text="thinking",
                                tool_calls=[common_pb2.ToolCall(id="c", name="send_message",
                                                                arguments='{"message": "hi"}')]),
             common_pb2.Message(id="3", role="tool", text=packing.function_result(True, "sent"),
                                tool_call_id="c", name="send_message")]
    a = asm.assemble("gpt-4o-mini", builtin(DEFAULT_PRESET) or "", state, list(state.blocks), "earlier: x",
                     queue, [], "2026-01-01T00:00:00Z")
    exact = counter.request("gpt-4o-mini", a.openai_messages(), OPENAI_TOOLS)
    assert exact <= a.prompt_tokens <= exact + 16


def test_packing_shapes():
    assert json.loads(packing.user_message("hi", "2026-01-01T10:00:00Z")) == {
        "type": "user_message", "message": "hi", "time": "2026-01-01 10:00 UTC"}
    assert json.loads(packing.function_result(False, "bad"))["status"] == "Failed"
    assert json.loads(packing.login("2026-01-01T10:00:00Z"))["type"] == "login"
    m = common_pb2.Message(role="system", text=packing.heartbeat("r"))
    assert chat_dict(m)["role"] == "user"


@pytest.mark.parametrize("model", ["gpt-4o-mini", "gpt-4", "claude-3-5-sonnet-latest"])
def test_counter_with_the_proxy_library_counts_parts_as_the_general_path(model: str) -> None:
    """TokenCounter() counts messages and text with the library's per-part counts; a counter given
    any count function derives the same numbers from whole-request counts."""
    from mnemo import tokens

    fast, general = TokenCounter(), TokenCounter(count=tokens.count_chat_tokens)
    assert fast.same_as_proxy and not general.same_as_proxy
    texts = ["", "hello", "### Memory\nnow 2026-12-06 06:00 AM, 4 messages in recall", "x" * 500, "émoji 🎉 ü"]
    messages = [{"role": "user", "content": t} for t in texts] + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "send_message", "arguments": '{"message": "hi"}'}}]},
        {"role": "tool", "tool_call_id": "c1", "name": "send_message", "content": '{"status": "OK"}'}]
    assert [fast.text(model, t) for t in texts] == [general.text(model, t) for t in texts]
    assert [fast.message(model, m) for m in messages] == [general.message(model, m) for m in messages]
