"""The per-message token-count cache: counts stay exact however often and in whatever order messages
come back, and anything a count depends on changes the count."""

from __future__ import annotations

from mnemo.tokens import counting as tokens
from mnemo.tokens.counting import count_chat_tokens, count_text


def _by_hand(model: str, messages: list[dict]) -> int:
    """OpenAI's formula, field by field, without the message cache."""
    n = tokens.REPLY_PRIMING
    for m in messages:
        n += tokens.TOKENS_PER_MESSAGE + count_text(model, m["role"]) + count_text(model, m.get("content") or "")
        if m.get("name"):
            n += tokens.TOKENS_PER_NAME + count_text(model, m["name"])
        for c in m.get("tool_calls") or ():
            n += tokens.TOKENS_PER_MESSAGE + count_text(model, c["function"]["name"]) \
                + count_text(model, c["function"]["arguments"])
    return n


def _call(args: str) -> dict:
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "send_message", "arguments": args}}]}


def test_a_growing_queue_is_counted_exactly_on_every_call() -> None:
    queue: list[dict] = [{"role": "system", "content": "You are a memory agent."}]
    for i in range(30):
        queue.append({"role": "user", "content": f"message {i} about cats and dogs " * (i % 4 + 1)})
        queue.append(_call(f'{{"message": "You said {i}"}}'))
        queue.append({"role": "tool", "content": '{"status": "OK"}', "tool_call_id": "c1"})
        for model in ("gpt-4o-mini", "gpt-4"):
            # fresh dicts each time, as the proxy builds them from protobuf on every call
            fresh = [dict(m) for m in queue]
            assert count_chat_tokens(model, fresh) == _by_hand(model, fresh)


def test_everything_a_count_depends_on_is_part_of_the_key() -> None:
    model = "gpt-4o-mini"
    base = {"role": "user", "content": "hello there"}
    variants = [
        base,
        {**base, "content": "hello there, friend"},
        {**base, "name": "alice_the_user"},
        {**_call('{"message": "a"}'), "content": "hello there"},
        {**_call('{"message": "a much longer argument string"}'), "content": "hello there"},
        {**base, "function_call": {"name": "f", "arguments": '{"x": 1}'}},
    ]
    counts = [count_chat_tokens(model, [v]) for v in variants]
    assert len(set(counts)) == len(counts), counts
    assert counts == [count_chat_tokens(model, [v]) for v in variants]   # cached: the same again
    # roles are one token each, so a role change shows in the key rather than in the count
    assert tokens._message_key(base) != tokens._message_key({**base, "role": "assistant"})


def test_the_cache_is_bounded() -> None:
    info = tokens._message_tokens_cached.cache_info()
    assert info.maxsize is not None and info.maxsize <= 100_000
