"""Queue compaction (docs/architecture.md): which messages to evict, and folding them into the summary."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from mnemo.orchestrator import packing
from mnemo.orchestrator.tokens import TokenCounter
from mnemo.v1 import common_pb2, llm_pb2

SUMMARIZER_INSTRUCTIONS = (
    "You maintain the running summary of a conversation between an AI agent and a user. You get the "
    "current summary and older messages that are leaving the agent's view. Write the new summary: "
    "one compact paragraph in the third person that keeps names, facts, preferences, decisions and "
    "open questions from both, oldest first. Output only the summary text."
)


def plan_eviction(roles: list[str], tokens: list[int], excess: int, keep_last: int) -> int:
    """How many of the oldest queue messages to evict to free at least `excess` tokens.

    Never evicts one of the newest `keep_last` messages and never cuts between an assistant call and
    its function returns (the first kept message is never a `tool` message). May free less than
    asked when those rules forbid more.
    """
    if excess <= 0 or not roles:
        return 0
    limit = max(0, len(roles) - keep_last)
    freed = 0
    k = 0
    while k < limit and freed < excess:
        freed += tokens[k]
        k += 1
    # Extend over returns of an evicted call (they would be orphaned otherwise).
    while k < len(roles) and roles[k] == "tool":
        k += 1
    if k > limit:
        # Extending broke keep_last: back off to a boundary that is not a tool return.
        k = limit
        while k > 0 and k < len(roles) and roles[k] == "tool":
            k -= 1
    return k


def eviction_count(roles: list[str], tokens: list[int], prompt_tokens: int, target: int, keep_last: int,
                   force: bool) -> int:
    """How many queue messages a compaction evicts to bring `prompt_tokens` down to `target`.

    A forced compaction (the context does not fit) evicts at least one message when the rules of
    `plan_eviction` allow it, even if the prompt is already under the target.
    """
    excess = prompt_tokens - target
    return plan_eviction(roles, tokens, max(excess, 1) if force else excess, keep_last)


def transcript_line(m: common_pb2.Message, max_chars: int = 2000) -> str:
    when = packing.friendly_time(m.created_at) if m.created_at else ""
    text = m.text
    if m.role == "assistant" and m.tool_calls:
        calls = "; ".join(f"{c.name}({c.arguments})" for c in m.tool_calls)
        text = f"{text} [calls: {calls}]" if text else f"[calls: {calls}]"
    if len(text) > max_chars:
        text = text[:max_chars] + " ..."
    return f"[{when}] {m.role}: {text}"


ChatFn = Callable[[llm_pb2.ChatRequest], Awaitable[llm_pb2.ChatResponse]]


async def summarize(chat: ChatFn, counter: TokenCounter, model: str, window: int, previous: str,
                    evicted: list[common_pb2.Message], summary_max_tokens: int,
                    meta: dict[str, str]) -> tuple[str, int]:
    """Fold `evicted` into `previous` with summarizer calls that each fit `window`.

    Returns (new summary, tokens spent). Long transcripts are folded chunk by chunk (recursively).
    """
    summary = previous
    spent = 0
    lines = [transcript_line(m) for m in evicted]
    budget = max(256, window - summary_max_tokens - 64)
    fixed = counter.text(model, SUMMARIZER_INSTRUCTIONS) + 32
    while lines:
        chunk: list[str] = []
        used = fixed + counter.text(model, summary)
        while lines:
            n = counter.text(model, lines[0]) + 2
            if chunk and used + n > budget:
                break
            if not chunk and used + n > budget:  # one huge line: cut it down to fit
                keep = max(100, int(len(lines[0]) * (budget - used) / max(n, 1)) - 50)
                lines[0] = lines[0][:keep] + " ..."
                n = counter.text(model, lines[0]) + 2
            chunk.append(lines.pop(0))
            used += n
        prompt = (f"Current summary:\n{summary or '(none yet)'}\n\n"
                  "Messages leaving the view:\n" + "\n".join(chunk))
        resp = await chat(llm_pb2.ChatRequest(
            model=model, purpose="summarizer", max_tokens=summary_max_tokens, temperature=0.0,
            messages=[llm_pb2.ChatMessage(role="system", content=SUMMARIZER_INSTRUCTIONS),
                      llm_pb2.ChatMessage(role="user", content=prompt)],
            tenant_id=meta.get("tenant_id", ""), agent_id=meta.get("agent_id", ""),
            turn_id=meta.get("turn_id", "")))
        spent += resp.usage.total_tokens
        summary = clip_to_tokens(counter, model, resp.message.content.strip() or summary, summary_max_tokens)
    return summary, spent


def clip_to_tokens(counter: TokenCounter, model: str, text: str, max_tokens: int) -> str:
    """Cut `text` (at a word boundary) until it is at most `max_tokens` tokens."""
    n = counter.text(model, text)
    while n > max_tokens and text:
        text = text[: max(0, int(len(text) * max_tokens / n * 0.95))].rsplit(" ", 1)[0]
        n = counter.text(model, text)
    return text
