"""Constrained local tool output is size-bounded, and output that still fails is always reported."""

from __future__ import annotations

import json

from mnemo.llm_proxy.providers.base import ChatCall
from mnemo.llm_proxy.providers.local_provider import tool_output_budget
from mnemo.llm_proxy.toolcalls import bound_schema, constrained_call, max_instance_chars, parse_output

SEARCH = {"type": "function", "function": {"name": "archival_memory_search", "parameters": {
    "type": "object", "properties": {"query": {"type": "string"}, "page": {"type": "integer"},
                                     "tags": {"type": "array", "items": {"type": "string", "maxLength": 500}}}}}}
SEND = {"type": "function", "function": {"name": "send_message", "parameters": {
    "type": "object", "properties": {"message": {"type": "string"}}, "required": ["message"]}}}


def test_bound_schema_limits_every_string_and_array() -> None:
    bounded = bound_schema(SEARCH["function"]["parameters"], 50)
    props = bounded["properties"]
    assert props["query"]["maxLength"] == 50
    assert props["tags"]["maxItems"] == 8 and props["tags"]["items"]["maxLength"] == 50
    assert "maxLength" not in props["page"]
    assert SEARCH["function"]["parameters"]["properties"]["query"] == {"type": "string"}  # not mutated


def test_budget_fits_the_largest_instance_even_for_a_small_max_tokens() -> None:
    call = ChatCall(model="m", messages=[], tools=[SEND, SEARCH], tool_choice="archival_memory_search",
                    max_tokens=40)
    schema, max_tokens = tool_output_budget(call)
    assert schema["properties"]["name"] == {"const": "archival_memory_search"}
    assert schema["properties"]["arguments"]["properties"]["query"]["maxLength"] <= 80
    worst = max_instance_chars(schema)
    assert max_tokens > 40 and max_tokens * 2 >= worst
    # a worst-case instance really is within the estimate
    instance = {"thought": "x" * schema["properties"]["thought"]["maxLength"], "name": "archival_memory_search",
                "arguments": {"query": "q" * 80, "page": -10**15, "tags": ["t" * 80] * 8}}
    assert len(json.dumps(instance, separators=(",", ":"))) <= worst


def test_empty_or_cut_constrained_output_is_an_error_not_silence() -> None:
    for text, truncated in (("", False), ('{"thought": "hm', True), ('{"name": "archival_memory_search", "argu', True)):
        content, raw = constrained_call(text)
        parsed = parse_output(content, raw, ["send_message", "archival_memory_search"], truncated=truncated)
        assert parsed.tool_calls == [] and parsed.error, (text, parsed)


def test_string_bound_stays_within_what_llama_cpp_accepts() -> None:
    call = ChatCall(model="m", messages=[], tools=[SEND, SEARCH], max_tokens=8192)
    schema, _ = tool_output_budget(call)
    for option in schema["anyOf"]:
        for prop in option["properties"]["arguments"]["properties"].values():
            assert prop.get("maxLength", 0) <= 1000
