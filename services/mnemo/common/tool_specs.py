"""Custom tools of an agent (`ToolSpec`) and their rules (`ToolRule`): the checks every edge and the
memory service apply alike, and the JSON Schema validators the orchestrator checks arguments with."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from functools import lru_cache
from typing import Any

import jsonschema
import orjson
from jsonschema.exceptions import SchemaError
from jsonschema.protocols import Validator

from mnemo.common.errors import InvalidArgument
from mnemo.v1 import common_pb2

# The agent's own functions (mnemo.orchestrator.functions.NAMES): no custom tool may take these names.
BUILTIN_FUNCTIONS: frozenset[str] = frozenset({
    "send_message", "core_memory_append", "core_memory_replace", "conversation_search",
    "conversation_search_date", "archival_memory_insert", "archival_memory_search", "pause_heartbeats"})
KINDS = ("client", "mcp")
NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_TOOLS = 64
MAX_SCHEMA_CHARS = 20_000
MAX_DESCRIPTION_CHARS = 4_000
DEFAULT_PARAMETERS = '{"type": "object", "properties": {}}'


def check_name(name: str, what: str = "tool") -> None:
    if not NAME.match(name or ""):
        raise InvalidArgument(f"{what} name {name!r} must be 1-64 characters of [A-Za-z0-9_-]")


def parse_schema(text: str, name: str) -> dict[str, Any]:
    """A tool's `parameters_json` as a JSON Schema object (InvalidArgument with the reason otherwise)."""
    if len(text) > MAX_SCHEMA_CHARS:
        raise InvalidArgument(f"parameters of tool {name!r} are longer than {MAX_SCHEMA_CHARS} characters")
    try:
        schema = json.loads(text or DEFAULT_PARAMETERS, parse_constant=_not_json)
    except ValueError as exc:
        raise InvalidArgument(f"parameters of tool {name!r} are not JSON: {exc}") from None
    try:  # what the model request is encoded with: integers of at most 64 bits
        orjson.dumps(schema)
    except TypeError as exc:
        raise InvalidArgument(f"parameters of tool {name!r} cannot be sent to a model: {exc}") from None
    if not isinstance(schema, dict):
        raise InvalidArgument(f"parameters of tool {name!r} must be a JSON Schema object")
    if schema.get("type", "object") != "object":
        raise InvalidArgument(f"parameters of tool {name!r} must describe an object (\"type\": \"object\")")
    try:
        jsonschema.validators.validator_for(schema).check_schema(schema)
    except SchemaError as exc:
        raise InvalidArgument(f"parameters of tool {name!r} are not a valid JSON Schema: {exc.message}") from None
    return schema


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not a JSON number")


def check_tool(spec: common_pb2.ToolSpec, kinds: tuple[str, ...] = KINDS) -> None:
    """InvalidArgument for a tool no agent may have."""
    check_name(spec.name)
    if spec.name in BUILTIN_FUNCTIONS:
        raise InvalidArgument(f"tool name {spec.name!r} is taken by a built-in function")
    if (spec.kind or "client") not in kinds:
        raise InvalidArgument(f"tool {spec.name!r}: kind must be one of {', '.join(kinds)}")
    if spec.kind == "mcp" and not spec.server_id:
        raise InvalidArgument(f"tool {spec.name!r}: an mcp tool names its server_id")
    if len(spec.description) > MAX_DESCRIPTION_CHARS:
        raise InvalidArgument(f"description of tool {spec.name!r} is longer than {MAX_DESCRIPTION_CHARS} characters")
    parse_schema(spec.parameters_json, spec.name)


def check_tools(specs: Iterable[common_pb2.ToolSpec], kinds: tuple[str, ...] = KINDS) -> None:
    """Each tool valid, names unique, at most MAX_TOOLS."""
    seen: set[str] = set()
    for spec in specs:
        check_tool(spec, kinds)
        if spec.name in seen:
            raise InvalidArgument(f"tool {spec.name!r} is given twice")
        seen.add(spec.name)
    if len(seen) > MAX_TOOLS:
        raise InvalidArgument(f"at most {MAX_TOOLS} tools per agent")


def check_rules(rules: Iterable[common_pb2.ToolRule]) -> None:
    """Each rule names a tool once, with no negative limit."""
    seen: set[str] = set()
    for rule in rules:
        check_name(rule.tool, "rule's tool")
        if rule.tool in seen:
            raise InvalidArgument(f"tool {rule.tool!r} has two rules: merge them")
        seen.add(rule.tool)
        if rule.max_calls_per_turn < 0:
            raise InvalidArgument(f"rule of {rule.tool!r}: max_calls_per_turn must be >= 0")
    if len(seen) > MAX_TOOLS + len(BUILTIN_FUNCTIONS):
        raise InvalidArgument("too many tool rules")


@lru_cache(maxsize=1024)
def validator(parameters_json: str) -> Validator:
    """A compiled validator of a tool's (already checked) schema, cached by its text."""
    schema = json.loads(parameters_json or DEFAULT_PARAMETERS)
    return jsonschema.validators.validator_for(schema)(schema)


def argument_errors(parameters_json: str, args: Any) -> list[str]:
    """Why `args` do not match the schema (empty: they do), each with the path of the field."""
    out = []
    for err in sorted(validator(parameters_json).iter_errors(args), key=lambda e: list(e.absolute_path)):
        where = "/".join(str(p) for p in err.absolute_path)
        out.append(f"{where}: {err.message}" if where else err.message)
    return out
