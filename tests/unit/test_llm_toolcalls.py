"""Repair and reporting of malformed model output; the constrained-call schema; config loading."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mnemo.common.config import Settings
from mnemo.llm_proxy.config import ProxyConfig, from_settings, load_file
from mnemo.llm_proxy.errors import CircuitOpen, RateLimited
from mnemo.llm_proxy.resilience import CircuitBreaker, TokenBucket
from mnemo.llm_proxy.toolcalls import call_schema, parse_arguments, parse_output

TOOLS = ["send_message", "archival_memory_search"]


@pytest.mark.parametrize("raw,expected", [
    ('{"message": "hi"}', {"message": "hi"}),
    ('```json\n{"message": "hi"}\n```', {"message": "hi"}),
    ('{"message": "hi"} and then some junk', {"message": "hi"}),
    ("{'message': 'hi',}", {"message": "hi"}),
    ("", {}),
])
def test_arguments_repaired_when_safe(raw: str, expected: dict) -> None:
    args, _ = parse_arguments(raw)
    assert args == expected


@pytest.mark.parametrize("raw", ["not json at all", "[1, 2]", '"just a string"'])
def test_arguments_reported_when_not_repairable(raw: str) -> None:
    args, reason = parse_arguments(raw)
    assert args is None and reason


def test_truncated_arguments_are_not_guessed() -> None:
    args, reason = parse_arguments('{"message": "a long answer that got cu', truncated=True)
    assert args is None and "cut off" in reason


def test_unknown_function_reported_and_prefixed_name_repaired() -> None:
    out = parse_output("", [("c1", "delete_everything", "{}")], TOOLS)
    assert not out.tool_calls and "unknown function 'delete_everything'" in out.error
    out = parse_output("", [("c1", "functions.send_message", '{"message": "x"}')], TOOLS)
    assert [c.name for c in out.tool_calls] == ["send_message"] and not out.error


@pytest.mark.parametrize("text", [
    '{"name": "send_message", "arguments": {"message": "hello"}}',
    'Sure!\n```json\n{"name": "send_message", "arguments": {"message": "hello"}}\n```',
    'send_message({"message": "hello"})',
])
def test_call_written_as_text_becomes_a_tool_call(text: str) -> None:
    out = parse_output(text, [], TOOLS)
    assert len(out.tool_calls) == 1
    assert out.tool_calls[0].name == "send_message"
    assert json.loads(out.tool_calls[0].arguments) == {"message": "hello"}
    assert out.tool_calls[0].id.startswith("call_")


def test_plain_text_stays_text() -> None:
    out = parse_output("I am thinking about {braces} here", [], TOOLS)
    assert out.content.startswith("I am thinking") and not out.tool_calls and not out.error


def test_call_schema_forces_one_of_the_tools() -> None:
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object", "properties": {
        "q": {"type": "string"}}, "required": ["q"]}}} for n in TOOLS]
    schema = call_schema(tools)
    assert [o["properties"]["name"]["const"] for o in schema["anyOf"]] == TOOLS
    assert call_schema(tools, "archival_memory_search")["properties"]["name"]["const"] == "archival_memory_search"
    with pytest.raises(ValueError):
        call_schema(tools, "nope")


def test_breaker_opens_then_half_opens() -> None:
    b = CircuitBreaker("p", failures=2, reset=0.05)
    b.before_call()
    b.failure()
    b.before_call()
    b.failure()
    with pytest.raises(CircuitOpen):
        b.before_call()
    import time
    time.sleep(0.06)
    b.before_call()          # the trial call
    b.success()
    assert b.state == "closed"


def test_token_bucket_refuses_with_retry_after() -> None:
    bucket = TokenBucket(600)   # 10 tokens/s
    bucket.take(600)
    with pytest.raises(RateLimited) as err:
        bucket.take(100)
    assert 5 < err.value.retry_after <= 10.5


def test_providers_file_yaml_and_secrets(tmp_path: Path) -> None:
    f = tmp_path / "providers.yaml"
    f.write_text("""
default_model: llama-3.1-8b
providers:
  - name: vllm
    base_url: http://127.0.0.1:9/v1
    api_key: sk-very-secret
    models: [{name: llama-3.1-8b, context_window: 32768, max_output_tokens: 1024}, qwen]
    timeout: 5
    max_concurrency: 3
  - name: other
    api_key_env: OTHER_KEY
""")
    cfg = load_file(f)
    assert cfg.route("llama-3.1-8b").name == "vllm" and cfg.route("qwen").name == "vllm"
    assert cfg.route("gpt-4o").name == "other"            # the catch-all
    assert "sk-very-secret" not in repr(cfg) and "sk-very-secret" not in cfg.model_dump_json()
    assert cfg.providers[0].resolved_api_key() == "sk-very-secret"
    j = tmp_path / "p.json"
    j.write_text(json.dumps({"providers": [{"name": "a", "models": ["m"]}]}))
    assert load_file(j).route("m").name == "a"


def test_defaults_from_environment() -> None:
    offline = from_settings(Settings(), environ={})
    assert offline.resolved_default_model() == "smollm2-135m-instruct"
    assert [p.kind for p in offline.providers] == ["local"]
    online = from_settings(Settings(), environ={"OPENAI_API_KEY": "k", "OPENAI_BASE_URL": "http://127.0.0.1:9/v1"})
    assert online.resolved_default_model() == "gpt-4o-mini"
    assert online.route("gpt-4o").base_url == "http://127.0.0.1:9/v1"
    assert isinstance(online, ProxyConfig)
