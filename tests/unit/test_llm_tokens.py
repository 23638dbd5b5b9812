"""Token counting against OpenAI's documented values; the offline guarantee; the model registry."""

from __future__ import annotations

import socket

import pytest
import tiktoken.load

from mnemo.tokens import counting as tokens
from mnemo.tokens import encodings, registry
from mnemo.tokens.counting import count_chat_tokens, count_text

# The OpenAI cookbook example ("How to count tokens with tiktoken"): 129 tokens for gpt-3.5-turbo /
# gpt-4 (cl100k_base) and 124 for gpt-4o / gpt-4o-mini (o200k_base), as the API reports them.
COOKBOOK_MESSAGES = [
    {"role": "system",
     "content": "You are a helpful, pattern-following assistant that translates corporate jargon into plain English."},
    {"role": "system", "name": "example_user", "content": "New synergies will help drive top-line growth."},
    {"role": "system", "name": "example_assistant", "content": "Things working well together will increase revenue."},
    {"role": "system", "name": "example_user",
     "content": "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage."},
    {"role": "system", "name": "example_assistant",
     "content": "Let's talk later when we're less busy about how to do better."},
    {"role": "user",
     "content": "This late pivot means we don't have time to boil the ocean for the client deliverable."},
]

# The cookbook's tools example: 105 prompt tokens (gpt-3.5-turbo, gpt-4), 101 (gpt-4o, gpt-4o-mini).
WEATHER_TOOLS = [{"type": "function", "function": {
    "name": "get_current_weather", "description": "Get the current weather in a given location",
    "parameters": {"type": "object", "properties": {
        "location": {"type": "string", "description": "The city and state, e.g. San Francisco, CA"},
        "unit": {"type": "string", "description": "The unit of temperature to return",
                 "enum": ["celsius", "fahrenheit"]}},
        "required": ["location"]}}}]
WEATHER_MESSAGES = [
    {"role": "system", "content": "You are a helpful assistant that can answer to questions about the weather."},
    {"role": "user", "content": "What's the weather like in San Francisco?"},
]


def test_hello_world_is_two_tokens() -> None:
    assert count_text("gpt-4", "hello world") == 2
    assert count_text("gpt-4o-mini", "hello world") == 2
    assert tokens.encoding("cl100k_base").encode("hello world") == [15339, 1917]


@pytest.mark.parametrize("model,expected", [("gpt-3.5-turbo", 129), ("gpt-4", 129), ("gpt-4o", 124),
                                            ("gpt-4o-mini", 124), ("gpt-4o-mini-2024-07-18", 124)])
def test_chat_count_matches_openai_formula(model: str, expected: int) -> None:
    assert count_chat_tokens(model, COOKBOOK_MESSAGES) == expected


@pytest.mark.parametrize("model,expected", [("gpt-3.5-turbo", 105), ("gpt-4", 105), ("gpt-4o", 101),
                                            ("gpt-4o-mini", 101)])
def test_tool_schemas_are_counted(model: str, expected: int) -> None:
    assert count_chat_tokens(model, WEATHER_MESSAGES, WEATHER_TOOLS) == expected
    assert count_chat_tokens(model, WEATHER_MESSAGES, WEATHER_TOOLS) > count_chat_tokens(model, WEATHER_MESSAGES)


def test_tool_calls_and_nested_schemas_add_tokens() -> None:
    call = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "send_message", "arguments": '{"message": "hi there"}'}}]}
    assert count_chat_tokens("gpt-4o", [call]) > count_chat_tokens("gpt-4o", [{"role": "assistant", "content": ""}])
    flat = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
        "type": "object", "properties": {"items": {"type": "array", "description": "x"}}}}}]
    nested = [{"type": "function", "function": {"name": "f", "description": "d", "parameters": {
        "type": "object", "properties": {"items": {"type": "array", "description": "x", "items": {
            "type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}}}}}}}]
    assert count_chat_tokens("gpt-4o", WEATHER_MESSAGES, nested) > count_chat_tokens("gpt-4o", WEATHER_MESSAGES, flat)


def test_offline_never_downloads(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no network and an empty TIKTOKEN_CACHE_DIR, encoders still build from bundled files."""
    def no_download(*args: object, **kwargs: object) -> bytes:
        raise AssertionError(f"tiktoken tried to read/download a BPE file: {args}")

    def no_network(self: socket.socket, *args: object) -> None:
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    monkeypatch.setattr(tiktoken.load, "read_file", no_download)
    monkeypatch.setattr(tiktoken.load, "read_file_cached", no_download)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket.socket, "connect_ex", no_network)
    encodings.clear_encodings()
    tokens._count.cache_clear()
    try:
        assert count_text("gpt-4", "hello world") == 2
        assert count_text("gpt-4o", "hello world") == 2
        assert count_chat_tokens("gpt-4o", COOKBOOK_MESSAGES) == 124
    finally:
        tokens._count.cache_clear()


def test_local_model_uses_its_own_vocabulary() -> None:
    text = "The quick brown fox jumps over the lazy dog."
    local = count_text(registry.LOCAL_CHAT_MODEL, text)
    assert local > 0
    assert tokens.tokenizer_name(registry.LOCAL_CHAT_MODEL) == "local:smollm2-135m-instruct"
    # SmolLM2's own BPE, not cl100k: a long rare word splits differently.
    assert count_chat_tokens(registry.LOCAL_CHAT_MODEL, WEATHER_MESSAGES, WEATHER_TOOLS) > \
        count_chat_tokens(registry.LOCAL_CHAT_MODEL, WEATHER_MESSAGES)


def test_registry_known_local_override_and_default() -> None:
    assert registry.model_info("gpt-4o-mini").context_window == 128_000
    assert registry.model_info("gpt-4o-mini-2024-07-18").max_output_tokens == 16_384
    assert registry.model_info("gpt-4").context_window == 8192
    local = registry.model_info("smollm2-135m-instruct")
    assert (local.context_window, local.provider) == (8192, "local")
    unknown = registry.model_info("some-vllm-model")
    assert (unknown.context_window, unknown.max_output_tokens, unknown.known) == (8192, 4096, False)
    registry.register(registry.ModelInfo("some-vllm-model", "vllm", 32_768, 2048))
    try:
        assert registry.model_info("some-vllm-model").context_window == 32_768
    finally:
        registry.unregister("some-vllm-model")


def test_counting_is_fast() -> None:
    import time

    count_chat_tokens("gpt-4o", COOKBOOK_MESSAGES, WEATHER_TOOLS)
    start = time.perf_counter()
    for _ in range(2000):
        count_chat_tokens("gpt-4o", COOKBOOK_MESSAGES, WEATHER_TOOLS)
    per_call = (time.perf_counter() - start) / 2000
    assert per_call < 0.001, f"{per_call * 1e6:.0f} us per count of a memoized request"


def test_a_process_counts_with_the_providers_file_models(tmp_path) -> None:
    """Another process (the orchestrator) registers the proxy's providers file and counts alike."""
    from mnemo import tokens as library

    f = tmp_path / "providers.yaml"
    f.write_text("providers:\n  - name: vllm\n    models: [{name: my-vllm-model, context_window: 32768, "
                 "tokenizer: o200k_base}, plain-model]\n")
    try:
        library.configure(f, None)
        assert registry.model_info("my-vllm-model").context_window == 32_768
        assert tokens.tokenizer_name("my-vllm-model") == "o200k_base"
        assert registry.model_info("plain-model").provider == "vllm"
    finally:
        registry.unregister("my-vllm-model")
        registry.unregister("plain-model")


def test_a_bundled_encoding_keeps_no_python_copy_of_its_ranks_and_still_pickles() -> None:
    """The Rust core holds the ranks; the Python dict tiktoken keeps beside it (~23 MB for o200k_base)
    is read back from the bundled file only when the Encoding is pickled."""
    import pickle

    enc = encodings.encoding("o200k_base")
    assert isinstance(enc._mergeable_ranks, encodings.RanksOnDisk)
    copy = pickle.loads(pickle.dumps(enc))
    assert isinstance(copy._mergeable_ranks, dict) and len(copy._mergeable_ranks) == 199_998
    text = "Ana moved to Lisbon in May 2023 🎻"
    assert copy.encode(text) == enc.encode(text) and enc.decode(enc.encode(text)) == text


def test_an_encoding_wanted_by_two_threads_at_once_is_built_once() -> None:
    """A start-up warm-up and the first step can ask for the same encoding together: one build."""
    from concurrent.futures import ThreadPoolExecutor

    encodings.clear_encodings()
    with ThreadPoolExecutor(max_workers=2) as pool:
        first, second = pool.map(encodings.encoding, ["cl100k_base", "cl100k_base"])
    assert first is second and "cl100k_base" in encodings.loaded_encodings()
