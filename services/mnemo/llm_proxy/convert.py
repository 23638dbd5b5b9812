"""Protobuf <-> the OpenAI-format dicts the engine works with."""

from __future__ import annotations

import json
from functools import lru_cache
from operator import itemgetter
from typing import Any

import orjson

from mnemo.common.growing_field import GrowingFieldMemo
from mnemo.llm_proxy import errors
from mnemo.llm_proxy.providers.base import ChatCall
from mnemo.v1 import llm_pb2

ROLES = {"system", "user", "assistant", "tool", "function", "developer"}
MESSAGES_FIELD = llm_pb2.ChatRequest.DESCRIPTOR.fields_by_name["messages"].number
_DICT, _JSON = itemgetter(0), itemgetter(1)


def message_dict(m: llm_pb2.ChatMessage) -> dict[str, Any]:
    if m.role not in ROLES:
        raise errors.InvalidRequest(f"message role {m.role!r} is not one of {', '.join(sorted(ROLES))}")
    d: dict[str, Any] = {"role": m.role, "content": m.content}
    if m.name:
        d["name"] = m.name
    if m.tool_calls:
        d["tool_calls"] = [{"id": c.id, "type": "function",
                            "function": {"name": c.name, "arguments": c.arguments or "{}"}} for c in m.tool_calls]
        if not m.content:
            d["content"] = None
    if m.tool_call_id:
        d["tool_call_id"] = m.tool_call_id
    return d


def _encoded(wire: bytes) -> tuple[dict[str, Any], bytes]:
    d = message_dict(llm_pb2.ChatMessage.FromString(wire))  # an invalid role raises: nothing is cached
    return d, orjson.dumps(d)


class MessageDicts:
    """OpenAI-form dicts of chat messages and their JSON, cached by each message's wire bytes.

    An agent's whole queue comes with every step, so without a cache each message would be converted
    and encoded again at every step (the proxy's largest cost on long queues). The key is the
    message's serialized form, so an edited message is a new entry. Entries are shared between
    calls: treat the dicts as read-only. Least recently used entries go first when the cache is full.
    The messages after the first (the system message, new at every step) are also kept per agent and
    purpose (`of_request`), so that a step looks up only the messages added since the agent's last one.
    """

    def __init__(self, size: int = 50_000, request_items: int = 50_000) -> None:
        self._encoded = lru_cache(maxsize=size)(_encoded)
        self._requests: GrowingFieldMemo[llm_pb2.ChatMessage, tuple[dict[str, Any], bytes]] = GrowingFieldMemo(
            MESSAGES_FIELD, skip=1, max_items=request_items)

    def get(self, m: llm_pb2.ChatMessage) -> tuple[dict[str, Any], bytes]:
        """(the message's dict, that dict as compact JSON)."""
        return self._encoded(m.SerializeToString())

    def of_request(self, req: llm_pb2.ChatRequest) -> list[tuple[dict[str, Any], bytes]]:
        """`get` of each of the request's messages, in order."""
        if not req.agent_id or len(req.messages) < 2:
            return [self.get(m) for m in req.messages]
        rest = self._requests.renders((req.tenant_id, req.agent_id, req.purpose), req.SerializeToString(),
                                      req.messages, self.get)
        return [self.get(req.messages[0]), *rest]

    @property
    def reused(self) -> int:
        """Messages taken from an agent's last request rather than looked up (figures, tests)."""
        return self._requests.reused


_dicts = MessageDicts()


def tool_dict(t: llm_pb2.Tool) -> dict[str, Any]:
    """The OpenAI form of a tool schema. Shared between calls (the same tools come with every turn of
    an agent): treat it as read-only."""
    return _tool_dict(t.name, t.description, t.parameters_json)


@lru_cache(maxsize=1024)
def _tool_dict(name: str, description: str, parameters_json: str) -> dict[str, Any]:
    if not name:
        raise errors.InvalidRequest("a tool has no name")
    try:
        params = json.loads(parameters_json) if parameters_json else {"type": "object", "properties": {}}
    except ValueError as exc:
        raise errors.InvalidRequest(f"tool {name!r}: parameters_json is not valid JSON: {exc}") from None
    if not isinstance(params, dict):
        raise errors.InvalidRequest(f"tool {name!r}: parameters_json must be a JSON object")
    fn: dict[str, Any] = {"name": name, "parameters": params}
    if description:
        fn["description"] = description
    return {"type": "function", "function": fn}


def chat_call(req: llm_pb2.ChatRequest) -> ChatCall:
    if not req.messages:
        raise errors.InvalidRequest("a chat request needs at least one message")
    if req.max_tokens < 0:
        raise errors.InvalidRequest("max_tokens must not be negative")
    if req.prompt_tokens < 0:
        raise errors.InvalidRequest("prompt_tokens must not be negative")
    entries = _dicts.of_request(req)
    return ChatCall(model=req.model, messages=list(map(_DICT, entries)), messages_json=list(map(_JSON, entries)),
                    tools=[tool_dict(t) for t in req.tools], tool_choice=req.tool_choice or "auto",
                    max_tokens=req.max_tokens or None,
                    temperature=req.temperature or None, prompt_tokens=req.prompt_tokens)
