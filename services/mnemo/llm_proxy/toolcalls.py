"""Turning model output into valid standard tool calls: repair what is safely repairable, report
the rest (ChatResponse.tool_call_error) so the orchestrator can feed it back to the agent."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from typing import Any

import json_repair

_FENCE = re.compile(r"^\s*```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```\s*$", re.S)
_FENCE_ANYWHERE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)\n?\s*```", re.S)
_CALL_SYNTAX = re.compile(r"^\s*(?:functions\.)?([A-Za-z_][\w.-]*)\s*\(\s*(\{.*\})\s*\)\s*;?\s*$", re.S)


@dataclass
class ToolCall:
    id: str
    name: str
    arguments: str   # a JSON object, as text


@dataclass
class ParsedOutput:
    content: str
    tool_calls: list[ToolCall] = field(default_factory=list)
    error: str = ""
    repaired: list[str] = field(default_factory=list)   # what was repaired (for logs / spans)


def new_call_id() -> str:
    return f"call_{uuid.uuid4().hex[:24]}"


def parse_arguments(raw: str, truncated: bool = False) -> tuple[dict[str, Any] | None, str]:
    """The arguments object of a call, repaired when that is safe; (None, reason) otherwise."""
    text = (raw or "").strip()
    if not text:
        return {}, ""
    try:
        value = json.loads(text)
        if isinstance(value, dict):
            return value, ""
        return None, f"arguments must be a JSON object, got {type(value).__name__}"
    except ValueError:
        pass
    m = _FENCE.match(text)
    if m:
        text = m.group(1).strip()
        try:
            value = json.loads(text)
            if isinstance(value, dict):
                return value, "code fence removed"
        except ValueError:
            pass
    start = text.find("{")
    if start >= 0:
        try:
            value, _end = json.JSONDecoder().raw_decode(text[start:])
            if isinstance(value, dict):
                return value, "trailing text removed"
        except ValueError:
            pass
    if not truncated and start >= 0:
        # Small syntax slips (single quotes, a trailing comma, a missing closing brace).
        value = json_repair.repair_json(text[start:], return_objects=True)
        if isinstance(value, dict) and value:
            return value, "JSON syntax repaired"
    why = "output was cut off (max_tokens reached)" if truncated else "not valid JSON"
    return None, f"arguments are {why}: {raw[:200]!r}"


def _match_name(name: str, tool_names: list[str]) -> str | None:
    if name in tool_names:
        return name
    cleaned = name.strip().removeprefix("functions.").strip("`'\" ")
    if cleaned in tool_names:
        return cleaned
    lowered = {t.lower(): t for t in tool_names}
    return lowered.get(cleaned.lower())


def validate_calls(raw_calls: list[tuple[str, str, str]], tool_names: list[str],
                   truncated: bool = False) -> tuple[list[ToolCall], list[str], list[str]]:
    """(id, name, arguments) triples → valid calls, errors and repairs. Without `tool_names` any
    name is accepted (the caller did not say which tools exist)."""
    calls: list[ToolCall] = []
    errors: list[str] = []
    repairs: list[str] = []
    for call_id, name, arguments in raw_calls:
        if not name.strip():
            why = "output was cut off (max_tokens reached)" if truncated else "no function name in the output"
            errors.append(f"no valid function call: {why}: {arguments[:200]!r}")
            continue
        matched = _match_name(name, tool_names) if tool_names else name
        if not matched:
            errors.append(f"unknown function {name!r}; available: {', '.join(tool_names)}")
            continue
        if matched != name:
            repairs.append(f"function name {name!r} -> {matched!r}")
        args, note = parse_arguments(arguments, truncated)
        if args is None:
            errors.append(f"function {matched!r}: {note}")
            continue
        if note:
            repairs.append(f"{matched}: {note}")
        text = arguments if not note else json.dumps(args, ensure_ascii=False)
        calls.append(ToolCall(call_id or new_call_id(), matched, text))
    return calls, errors, repairs


def _call_from_object(obj: Any, tool_names: list[str]) -> tuple[str, Any] | None:
    if not isinstance(obj, dict):
        return None
    if isinstance(obj.get("function"), dict):     # {"function": {"name":..., "arguments":...}}
        obj = obj["function"]
    name = obj.get("name") or obj.get("function") or obj.get("tool")
    if not isinstance(name, str) or not _match_name(name, tool_names):
        return None
    args = obj.get("arguments", obj.get("parameters", obj.get("args", {})))
    return name, args


def calls_in_text(content: str, tool_names: list[str]) -> tuple[str, list[tuple[str, str, str]]]:
    """A call written as text (JSON object, fenced JSON, `name({...})`): (remaining text, calls).
    Only calls to one of `tool_names` are recognised."""
    if not content or not tool_names:
        return content, []
    candidates: list[tuple[str, str]] = []   # (matched text, json or call syntax)
    stripped = content.strip()
    candidates.append((content, stripped))
    for m in _FENCE_ANYWHERE.finditer(content):
        candidates.append((m.group(0), m.group(1).strip()))
    brace = content.find("{")
    if brace > 0:
        candidates.append((content[brace:], content[brace:].strip()))
    for whole, text in candidates:
        call = _CALL_SYNTAX.match(text)
        if call and _match_name(call.group(1), tool_names):
            return content.replace(whole, "").strip(), [("", call.group(1), call.group(2))]
        try:
            obj = json.loads(text)
        except ValueError:
            continue
        found = _call_from_object(obj, tool_names)
        if found:
            name, args = found
            thought = obj.get("thought") or obj.get("inner_thoughts") if isinstance(obj, dict) else None
            rest = content.replace(whole, "").strip()
            if isinstance(thought, str) and thought and not rest:
                rest = thought
            return rest, [("", name, args if isinstance(args, str) else json.dumps(args, ensure_ascii=False))]
    return content, []


def parse_output(content: str, raw_calls: list[tuple[str, str, str]], tool_names: list[str],
                 truncated: bool = False) -> ParsedOutput:
    """Normalize one model reply: valid calls kept, repairs applied, the rest reported in `error`."""
    repairs: list[str] = []
    if not raw_calls and tool_names:
        content, raw_calls = calls_in_text(content, tool_names)
        if raw_calls:
            repairs.append("call written as text converted to a tool call")
    calls, errors, more = validate_calls(raw_calls, tool_names, truncated)
    repairs.extend(more)
    return ParsedOutput(content=content or "", tool_calls=calls, error="; ".join(errors), repaired=repairs)


# ---- constrained output for models without reliable native tool calling ----------------------

DEFAULT_MAX_ITEMS = 8      # arrays without maxItems, in constrained output


def bound_schema(schema: Any, max_chars: int) -> Any:
    """A copy of `schema` where every string has a maxLength <= `max_chars` and every array a
    maxItems, so that any instance (and so the constrained output) is of bounded size."""
    if isinstance(schema, list):
        return [bound_schema(s, max_chars) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: bound_schema(v, max_chars) if k in ("items", "anyOf", "oneOf", "allOf", "additionalProperties")
           else v for k, v in schema.items()}
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: bound_schema(v, max_chars) for k, v in schema["properties"].items()}
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    if "string" in types and "enum" not in schema and "const" not in schema:
        out["maxLength"] = min(int(schema.get("maxLength", max_chars)), max_chars)
        out["minLength"] = min(int(schema.get("minLength", 0)), out["maxLength"])
    if "array" in types:
        out["maxItems"] = min(int(schema.get("maxItems", DEFAULT_MAX_ITEMS)), DEFAULT_MAX_ITEMS)
    return out


def max_instance_chars(schema: Any) -> int:
    """An upper bound on the length of a compact JSON instance of a bounded schema (bound_schema)."""
    if not isinstance(schema, dict):
        return 8
    if "const" in schema:
        return len(json.dumps(schema["const"], ensure_ascii=False))
    if "enum" in schema:
        return max((len(json.dumps(v, ensure_ascii=False)) for v in schema["enum"]), default=4)
    for key in ("anyOf", "oneOf"):
        if isinstance(schema.get(key), list):
            return max((max_instance_chars(s) for s in schema[key]), default=8)
    types = schema.get("type")
    types = types if isinstance(types, list) else [types]
    sizes = []
    if "object" in types or "properties" in schema:
        props = schema.get("properties") or {}
        sizes.append(2 + sum(len(k) + 4 + max_instance_chars(v) for k, v in props.items()))
    if "array" in types:
        sizes.append(2 + int(schema.get("maxItems", DEFAULT_MAX_ITEMS)) * (max_instance_chars(schema.get("items")) + 1))
    if "string" in types:
        sizes.append(2 + 2 * int(schema.get("maxLength", 64)))  # escapes may double a character
    if "number" in types or "integer" in types:
        sizes.append(24)
    if "boolean" in types or "null" in types:
        sizes.append(5)
    return max(sizes, default=32)


def call_schema(tools: list[dict[str, Any]], choice: str = "auto",
                max_string_chars: int | None = None) -> dict[str, Any]:
    """A JSON schema whose instances are `{"thought"?: str, "name": <tool>, "arguments": <its schema>}`.

    The call is mandatory (an agent always calls a function); the optional `thought` carries text.
    `choice` names a single tool to force it. `max_string_chars` bounds every string (and arrays)
    so the output's size is bounded (max_instance_chars) and can always close.
    """
    options = []
    thought_chars = 300 if max_string_chars is None else min(300, max_string_chars)
    for t in tools:
        fn = t.get("function", t)
        if choice not in ("auto", "required", "", "none") and fn["name"] != choice:
            continue
        params = fn.get("parameters") or {"type": "object", "properties": {}}
        if max_string_chars is not None:
            params = bound_schema(params, max_string_chars)
        options.append({
            "type": "object",
            "properties": {
                "thought": {"type": "string", "maxLength": thought_chars},
                "name": {"const": fn["name"]},
                "arguments": params,
            },
            "required": ["name", "arguments"],
        })
    if not options:
        raise ValueError(f"tool_choice {choice!r} names no given tool")
    return options[0] if len(options) == 1 else {"anyOf": options}


def tools_prompt(tools: list[dict[str, Any]]) -> str:
    """The tool list as system-prompt text, for models that get calls through constrained output."""
    lines = ["You can call these functions. Reply with one JSON object: "
             '{"thought": "<private reasoning, optional>", "name": "<function>", "arguments": {...}}.']
    for t in tools:
        fn = t["function"]
        lines.append(f"- {fn['name']}: {fn.get('description', '')} "
                     f"arguments schema: {json.dumps(fn.get('parameters') or {}, separators=(',', ':'))}")
    return "\n".join(lines)


def local_messages(call: Any, with_tools: bool) -> list[dict[str, str]]:
    """Messages for a model without native tools: calls and results written as text, the tool list
    appended to the system prompt."""
    out: list[dict[str, str]] = []
    for m in call.messages:
        role, content = m.get("role", "user"), m.get("content") or ""
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        if m.get("tool_calls"):
            calls = []
            for c in m["tool_calls"]:
                args, _ = parse_arguments(c["function"].get("arguments") or "{}")
                calls.append({"name": c["function"]["name"], "arguments": args or {}})
            body = json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)
            content = f"{content}\n{body}".strip()
        if role == "tool":
            role, content = "user", f"[function {m.get('name') or ''} returned] {content}"
        out.append({"role": role, "content": content})
    if with_tools:
        prompt = tools_prompt(call.tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": out[0]["content"] + "\n\n" + prompt}
        else:
            out.insert(0, {"role": "system", "content": prompt})
    return out


def constrained_call(text: str) -> tuple[str, list[tuple[str, str, str]]]:
    """Constrained output `{"thought"?, "name", "arguments"}` → (thought, [(id, name, arguments)]).
    Output cut short is passed on as a call with raw arguments, for the repair / error path."""
    if not text.strip():  # nothing at all came out: still a (failed) call, so the error is reported
        return "", [("", "", "")]
    try:
        obj = json.loads(text)
    except ValueError:
        if not text.lstrip().startswith("{"):
            return text, []
        m = re.search(r'"name"\s*:\s*"([^"]*)"', text)
        return "", [("", m.group(1) if m else "", text)]
    if not isinstance(obj, dict):
        return text, []
    thought = obj.get("thought")
    args = obj.get("arguments", {})
    return (str(thought) if thought else "",
            [("", str(obj.get("name", "")), args if isinstance(args, str) else json.dumps(args, ensure_ascii=False))])
