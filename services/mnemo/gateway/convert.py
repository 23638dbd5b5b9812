"""Protobuf messages <-> the JSON shapes of the REST API."""

from __future__ import annotations

import base64
import functools
from collections.abc import Callable
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message as PbMessage

from mnemo.v1 import agent_pb2, common_pb2, memory_pb2

HIDDEN = "***"


def to_json(msg: PbMessage) -> dict[str, Any]:
    """Every field by its proto name (defaults included; unset oneof members left out; int64 as numbers)."""
    out: dict[str, Any] = {}
    for name, in_oneof, convert in _plan(msg.DESCRIPTOR):
        if in_oneof and not msg.HasField(name):
            continue
        out[name] = convert(getattr(msg, name))
    return out


Convert = Callable[[Any], Any]


@functools.cache
def _plan(desc: Descriptor) -> tuple[tuple[str, bool, Convert], ...]:
    """How each field of a message type becomes JSON, worked out once per type (every event of every
    turn goes through `to_json`)."""
    return tuple((f.name, f.containing_oneof is not None, _converter(f)) for f in desc.fields)


def _same(value: Any) -> Any:
    return value


def _b64(value: bytes) -> str:
    return base64.b64encode(value).decode()


def _scalar(field: FieldDescriptor) -> Convert:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_json
    if field.type == FieldDescriptor.TYPE_BYTES:
        return _b64
    return _same


def _converter(field: FieldDescriptor) -> Convert:
    if field.message_type is not None and field.message_type.GetOptions().map_entry:
        value = _scalar(field.message_type.fields_by_name["value"])
        return lambda m: {k: value(v) for k, v in m.items()}
    one = _scalar(field)
    if field.is_repeated:
        return list if one is _same else (lambda items: [one(v) for v in items])
    return one


def public_agent(state: common_pb2.AgentState) -> agent_pb2.Agent:
    """The user-facing view of an agent's state."""
    cfg = state.config
    return agent_pb2.Agent(
        id=cfg.id, name=cfg.name, model=cfg.model, context_window=cfg.context_window, preset=cfg.preset,
        limits=cfg.limits, blocks=list(state.blocks), created_at=cfg.created_at,
        counts={"recall": state.recall_count, "archival": state.archival_count, "queue": len(state.queue)},
        embedding_model=cfg.embedding_model, embedding_dim=cfg.embedding_dim, tools=cfg.tools,
        tool_rules=cfg.tool_rules, tool_timeout_seconds=cfg.tool_timeout_seconds, consolidation=cfg.consolidation,
        consolidation_status=state.consolidation)


def config_agent(cfg: common_pb2.AgentConfig) -> agent_pb2.Agent:
    """The user-facing view of a config alone (agent lists)."""
    return agent_pb2.Agent(id=cfg.id, name=cfg.name, model=cfg.model, context_window=cfg.context_window,
                           preset=cfg.preset, limits=cfg.limits, created_at=cfg.created_at,
                           embedding_model=cfg.embedding_model, embedding_dim=cfg.embedding_dim,
                           tools=cfg.tools, tool_rules=cfg.tool_rules,
                           tool_timeout_seconds=cfg.tool_timeout_seconds, consolidation=cfg.consolidation)


def public_mcp_server(server: memory_pb2.McpServer) -> agent_pb2.PublicMcpServer:
    """A registered MCP server as its tenant sees it: header and env values hidden (they hold secrets)."""
    return agent_pb2.PublicMcpServer(
        id=server.id, name=server.name, transport=server.transport, command=server.command, args=server.args,
        env={k: HIDDEN for k in server.env}, url=server.url, headers={k: HIDDEN for k in server.headers},
        timeout_seconds=server.timeout_seconds, max_result_chars=server.max_result_chars,
        created_at=server.created_at)
