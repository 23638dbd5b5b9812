"""The agent's functions: JSON schemas (sent as tools) and argument validation."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any

from mnemo.v1 import llm_pb2

_HEARTBEAT = {
    "type": "boolean",
    "description": "true to get another step right after this function returns",
}
_PAGE = {"type": "integer", "minimum": 0,
         "description": "page of results, 0 for the first (results come in pages)"}


def _schema(name: str, description: str, properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "parameters": {
            "type": "object",
            "properties": {**properties, "request_heartbeat": _HEARTBEAT},
            "required": [*required, "request_heartbeat"],
        },
    }


SCHEMAS: list[dict[str, Any]] = [
    _schema("send_message", "Send a message to the user. The only way to talk to them.",
            {"message": {"type": "string", "description": "the message text (markdown allowed)"}},
            ["message"]),
    _schema("core_memory_append", "Append a line to a core memory block.",
            {"label": {"type": "string", "description": "block label, e.g. persona or human"},
             "content": {"type": "string", "description": "text to add"}},
            ["label", "content"]),
    _schema("core_memory_replace", "Replace exact text in a core memory block (empty new_content deletes).",
            {"label": {"type": "string", "description": "block label, e.g. persona or human"},
             "old_content": {"type": "string", "description": "text to replace, exactly as it appears"},
             "new_content": {"type": "string", "description": "replacement text"}},
            ["label", "old_content", "new_content"]),
    _schema("conversation_search", "Search recall memory (all past messages) by text.",
            {"query": {"type": "string", "description": "words to look for"}, "page": _PAGE},
            ["query"]),
    _schema("conversation_search_date", "List recall messages in a date range.",
            {"start_date": {"type": "string", "description": "YYYY-MM-DD (inclusive)"},
             "end_date": {"type": "string", "description": "YYYY-MM-DD (inclusive)"},
             "page": _PAGE},
            ["start_date", "end_date"]),
    _schema("archival_memory_insert", "Store a passage in archival memory for later.",
            {"content": {"type": "string", "description": "the passage to store"}},
            ["content"]),
    _schema("archival_memory_search", "Search archival memory by meaning and words.",
            {"query": {"type": "string", "description": "what to look for"}, "page": _PAGE},
            ["query"]),
    _schema("pause_heartbeats", "Stop asking for further steps until the user writes again.",
            {"minutes": {"type": "integer", "minimum": 1, "description": "how long to pause"}},
            ["minutes"]),
]

BY_NAME: dict[str, dict[str, Any]] = {s["name"]: s for s in SCHEMAS}
NAMES: tuple[str, ...] = tuple(BY_NAME)

# Built once: the tools of every agent request, and their OpenAI form (for token counting).
TOOLS: list[llm_pb2.Tool] = [
    llm_pb2.Tool(name=s["name"], description=s["description"], parameters_json=json.dumps(s["parameters"]))
    for s in SCHEMAS
]
OPENAI_TOOLS: list[dict[str, Any]] = [{"type": "function", "function": s} for s in SCHEMAS]
TOOLS_KEY = "agent-functions-v1"

_TYPES = {"string": str, "boolean": bool, "integer": int}


class FunctionError(Exception):
    """A call the agent must correct: the text goes back to it as a Failed result."""


@dataclass
class ParsedCall:
    call_id: str
    name: str
    arguments_text: str
    args: dict[str, Any]
    heartbeat: bool


def parse_call(call_id: str, name: str, arguments: str) -> ParsedCall:
    """Validate one tool call against its schema; FunctionError with a helpful reason otherwise."""
    schema = BY_NAME.get(name)
    if schema is None:
        raise FunctionError(f"unknown function {name!r}; available functions: {', '.join(NAMES)}")
    try:
        args = json.loads(arguments) if arguments.strip() else {}
    except json.JSONDecodeError as exc:
        raise FunctionError(f"arguments of {name} are not valid JSON ({exc.msg} at position {exc.pos})") from None
    if not isinstance(args, dict):
        raise FunctionError(f"arguments of {name} must be a JSON object")
    props = schema["parameters"]["properties"]
    unknown = sorted(set(args) - set(props))
    if unknown:
        raise FunctionError(f"{name} got unexpected argument(s) {', '.join(unknown)}; "
                            f"expected: {', '.join(props)}")
    heartbeat = args.pop("request_heartbeat", False)
    if isinstance(heartbeat, str):
        heartbeat = heartbeat.strip().lower() == "true"
    missing = [r for r in schema["parameters"]["required"] if r != "request_heartbeat" and r not in args]
    if missing:
        raise FunctionError(f"{name} is missing required argument(s): {', '.join(missing)}")
    for key, value in args.items():
        want = props[key]["type"]
        if want == "integer" and isinstance(value, str) and value.strip().lstrip("-").isdigit():
            value = args[key] = int(value)
        if not isinstance(value, _TYPES[want]) or (want == "integer" and isinstance(value, bool)):
            raise FunctionError(f"argument {key} of {name} must be of type {want}")
        if want == "integer" and value < props[key].get("minimum", value):
            raise FunctionError(f"argument {key} of {name} must be >= {props[key]['minimum']}")
    return ParsedCall(call_id, name, arguments, args, bool(heartbeat))


def fingerprint(name: str, arguments: str) -> str:
    """Identity of a call for the loop guard (argument order and spacing ignored)."""
    try:
        canonical = json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    except ValueError:
        canonical = arguments.strip()
    return hashlib.sha1(f"{name}:{canonical}".encode()).hexdigest()[:16]
