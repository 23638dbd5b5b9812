"""Main-context assembly (docs/architecture.md): system instructions, memory metadata, core memory, summary,
then the message queue, converted to chat messages and counted part by part."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from operator import attrgetter
from typing import Any

from mnemo.common.growing_field import GrowingFieldMemo
from mnemo.orchestrator import packing
from mnemo.orchestrator.tokens import SECTION_SLACK, TokenCounter
from mnemo.orchestrator.tools import BUILTIN_ONLY, ToolSet
from mnemo.v1 import common_pb2, llm_pb2

DEFAULT_BLOCK_LIMIT = 2000
_STORED_TOKENS = attrgetter("tokens")


def metadata_section(state: common_pb2.AgentState, now_iso: str) -> str:
    last_edit = packing.friendly_time(state.last_memory_edit_at) if state.last_memory_edit_at else "never"
    return (
        "### Memory metadata\n"
        f"- current time: {packing.friendly_time(now_iso)}\n"
        f"- recall memory: {state.recall_count} messages ({len(state.queue)} in view, the rest searchable)\n"
        f"- archival memory: {state.archival_count} passages\n"
        f"- core memory last edited: {last_edit}"
        + consolidation_line(state)
    )


def consolidation_line(state: common_pb2.AgentState) -> str:
    """The last background consolidation, for agents that have it (else nothing)."""
    status = state.consolidation
    if not state.config.consolidation.enabled and not status.last_at:
        return ""
    if not status.last_at:
        return "\n- memory last consolidated: never"
    done = [f"{status.blocks_rewritten} block(s) rewritten"]
    if status.summary_refreshed:
        done.append("summary refreshed")
    if status.merge_proposals:
        done.append(f"{status.merge_proposals} archival duplicate group(s) proposed for merging")
    return f"\n- memory last consolidated: {packing.friendly_time(status.last_at)} ({', '.join(done)})"


def core_memory_section(blocks: list[common_pb2.MemoryBlock]) -> str:
    parts = ["### Core memory"]
    for b in blocks:
        limit = b.limit or DEFAULT_BLOCK_LIMIT
        shared = ""
        if b.shared_id:  # other agents read and write it too
            with_whom = ", ".join(b.shared_with) or "no other agent yet"
            shared = f' shared_with="{with_whom}"'
        parts.append(f'<{b.label} characters="{len(b.value)}/{limit}"{shared}>\n{b.value}\n</{b.label}>')
    return "\n".join(parts)


def summary_section(summary: str) -> str:
    if not summary:
        return ""
    return "### Summary of the earlier conversation (older messages are in recall memory)\n" + summary


def chat_dict(m: common_pb2.Message) -> dict[str, Any]:
    """A queue message as the model sees it (OpenAI format)."""
    if m.role == "user":
        return {"role": "user", "content": packing.user_message(m.text, m.created_at)}
    if m.role == "system":  # system events are stored packed and shown as user-role JSON
        return {"role": "user", "content": m.text}
    if m.role == "tool":
        return {"role": "tool", "content": m.text, "tool_call_id": m.tool_call_id, "name": m.name}
    out: dict[str, Any] = {"role": "assistant", "content": m.text}
    if m.tool_calls:
        out["tool_calls"] = [{"id": c.id, "type": "function",
                              "function": {"name": c.name, "arguments": c.arguments}}
                             for c in m.tool_calls]
    return out


def to_chat_message(d: dict[str, Any], m: common_pb2.Message | None = None) -> llm_pb2.ChatMessage:
    cm = llm_pb2.ChatMessage(role=d["role"], content=d.get("content") or "", tool_call_id=d.get("tool_call_id", ""),
                             name=d.get("name", "") if d["role"] == "tool" else "")
    if m is not None and m.tool_calls:
        cm.tool_calls.extend(m.tool_calls)
    return cm


def _wire_entry(wire: bytes) -> bytes:
    m = common_pb2.Message.FromString(wire)
    return llm_pb2.ChatRequest(messages=[to_chat_message(chat_dict(m), m)]).SerializeToString()


QUEUE_FIELD = common_pb2.AgentState.DESCRIPTOR.fields_by_name["queue"].number


class RenderCache:
    """Queue messages rendered for the model, kept as wire bytes by the message's own wire bytes.

    Each entry is one encoded `messages` field of a ChatRequest (repeated fields concatenate on the
    wire), so a queue message is packed and encoded once, not at every step, and a step's request is
    parsed from the joined entries in one call instead of copying every message object. Keyed by the
    whole message, so an edited message (a rewritten reply) is rendered again. Least recently used
    entries go first when the cache is full. An agent's whole queue is also kept per agent
    (`queue_entries`), so that a step looks up only the messages added since the agent's last step.
    """

    def __init__(self, size: int = 100_000, queue_items: int = 50_000) -> None:
        self._entry = lru_cache(maxsize=size)(_wire_entry)
        self._queues: GrowingFieldMemo[common_pb2.Message, bytes] = GrowingFieldMemo(QUEUE_FIELD, max_items=queue_items)
        self._tokens: GrowingFieldMemo[common_pb2.Message, int] = GrowingFieldMemo(QUEUE_FIELD, max_items=queue_items)

    def entry(self, m: common_pb2.Message) -> bytes:
        return self._entry(m.SerializeToString())

    def queue_entries(self, state: common_pb2.AgentState, data: bytes | None = None) -> list[bytes]:
        """The entry of each message of `state.queue`, in order (`data`: the state serialized, when the
        caller has it)."""
        key = (state.config.tenant_id, state.config.id)
        return self._queues.renders(key, state.SerializeToString() if data is None else data, state.queue,
                                    self.entry)

    def queue_tokens(self, state: common_pb2.AgentState, data: bytes, model: str,
                     count: Callable[[str, common_pb2.Message], int]) -> list[int]:
        """`count(model, m)` of each message of `state.queue`, whose serialization `data` holds, in
        order; only the messages added since the agent's last step are counted (a queue of thousands of
        messages is not walked at every step)."""
        key = (state.config.tenant_id, state.config.id, model)
        return self._tokens.renders(key, data, state.queue, lambda m: count(model, m))

    @property
    def reused(self) -> int:
        """Queue entries taken from an agent's last step rather than looked up (figures, tests)."""
        return self._queues.reused


@dataclass
class Assembled:
    """A request ready to send, with its token accounting."""

    system_text: str
    system_tokens: int
    tools_tokens: int
    queue: Sequence[common_pb2.Message]
    queue_tokens: list[int]
    inputs: list[common_pb2.Message]
    input_tokens: list[int]
    base_tokens: int
    dicts: list[dict[str, Any]] = field(default_factory=list)
    # system_tokens by part: the system message's framing, then preset, memory metadata, core
    # memory and summary (each with its section slack; 0 for an absent part).
    system_parts: tuple[int, int, int, int, int] = (0, 0, 0, 0, 0)

    @cached_property
    def prompt_tokens(self) -> int:
        """(Summed once: the parts are not changed after assembly; the planner assembles anew.)"""
        return (self.base_tokens + self.system_tokens + self.tools_tokens
                + sum(self.queue_tokens) + sum(self.input_tokens))

    def chat_request(self, cache: RenderCache, queue_entries: Sequence[bytes] | None = None,
                     **fields: Any) -> llm_pb2.ChatRequest:
        """The step's ChatRequest: the system message, then the queue and the step's inputs.
        `queue_entries`: the queue's entries when the caller has them (`RenderCache.queue_entries`)."""
        req = llm_pb2.ChatRequest(messages=[llm_pb2.ChatMessage(role="system", content=self.system_text)],
                                  **fields)
        if queue_entries is None or len(queue_entries) != len(self.queue):
            queue_entries = [cache.entry(m) for m in self.queue]
        req.MergeFromString(b"".join([*queue_entries, *(cache.entry(m) for m in self.inputs)]))
        return req

    def openai_messages(self) -> list[dict[str, Any]]:
        return [{"role": "system", "content": self.system_text},
                *(chat_dict(m) for m in [*self.queue, *self.inputs])]


class ContextAssembler:
    """Builds and counts the main context of one step."""

    def __init__(self, counter: TokenCounter) -> None:
        self.counter = counter

    def message_tokens(self, model: str, m: common_pb2.Message) -> int:
        if m.tokens > 0:
            return m.tokens
        n = self.counter.message(model, chat_dict(m))
        m.tokens = n
        return n

    def messages_tokens(self, model: str, messages: Sequence[common_pb2.Message]) -> list[int]:
        """`message_tokens` of each message; the stored counts are read without a Python-level loop
        (a long queue is read at every step), and only the messages without one are counted."""
        counts = list(map(_STORED_TOKENS, messages))
        if counts and min(counts) <= 0:
            counts = [n if n > 0 else self.message_tokens(model, m) for n, m in zip(counts, messages, strict=True)]
        return counts

    def assemble(self, model: str, preset: str, state: common_pb2.AgentState,
                 blocks: list[common_pb2.MemoryBlock], summary: str, queue: Sequence[common_pb2.Message],
                 inputs: list[common_pb2.Message], now_iso: str, tools: ToolSet = BUILTIN_ONLY,
                 queue_tokens: list[int] | None = None) -> Assembled:
        """The step's context. `queue_tokens`: the queue's token counts when the caller has them."""
        parts = (preset.strip(), metadata_section(state, now_iso), core_memory_section(blocks),
                 summary_section(summary))
        sections = [s for s in parts if s]
        system_text = "\n\n".join(sections)
        framing = self.counter.message(model, {"role": "system", "content": ""})
        preset_t, meta_t, core_t, summary_t = (self.counter.text(model, part) + SECTION_SLACK if part else 0
                                               for part in parts)
        return Assembled(
            system_text=system_text,
            system_tokens=framing + preset_t + meta_t + core_t + summary_t,
            system_parts=(framing, preset_t, meta_t, core_t, summary_t),
            tools_tokens=self.counter.tools(model, tools.openai_tools, tools.key),
            queue=queue,
            queue_tokens=self.messages_tokens(model, queue) if queue_tokens is None else queue_tokens,
            inputs=inputs,
            input_tokens=self.messages_tokens(model, inputs),
            base_tokens=self.counter.base(model),
        )
