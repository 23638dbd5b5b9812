"""Agent state in the NATS KV bucket `mnemo_agents`: one key per agent, AgentState protobuf bytes.

The KV revision is the agent's compare-and-set revision (AgentState.revision is filled on read).
"""

from __future__ import annotations

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mnemo.common import ids, subjects
from mnemo.common.natsutil import live_entries
from mnemo.memory.errors import Conflict, InvalidArgument, NotFound
from mnemo.v1 import common_pb2


def check_ref(tenant_id: str, agent_id: str | None = None) -> None:
    """Tenant and agent ids must be single NATS tokens (they are parts of keys and subjects)."""
    if not tenant_id or not ids.is_token(tenant_id):
        raise InvalidArgument(f"invalid tenant_id {tenant_id!r}: 1-64 characters of [A-Za-z0-9_-]")
    if agent_id is not None and (not agent_id or not ids.is_token(agent_id)):
        raise InvalidArgument(f"invalid agent_id {agent_id!r}: 1-64 characters of [A-Za-z0-9_-]")


class AgentStore:
    """Read and compare-and-set write of agent states."""

    def __init__(self, kv: KeyValue) -> None:
        self.kv = kv

    async def get(self, tenant_id: str, agent_id: str) -> common_pb2.AgentState:
        """The agent's state with `revision` set; NotFound for an unknown (or other tenant's) agent."""
        check_ref(tenant_id, agent_id)
        try:
            entry = await self.kv.get(subjects.agent_key(tenant_id, agent_id))
        except KeyNotFoundError:
            raise NotFound(f"agent {agent_id} not found") from None
        if not entry.value:
            raise NotFound(f"agent {agent_id} not found")
        state = common_pb2.AgentState.FromString(entry.value)
        state.revision = entry.revision
        return state

    async def create(self, state: common_pb2.AgentState) -> common_pb2.AgentState:
        key = subjects.agent_key(state.config.tenant_id, state.config.id)
        state.revision = 0
        try:
            revision = await self.kv.create(key, state.SerializeToString())
        except KeyWrongLastSequenceError:
            raise Conflict(f"agent {state.config.id} already exists") from None
        state.revision = revision
        return state

    async def put(self, state: common_pb2.AgentState, expected_revision: int) -> common_pb2.AgentState:
        """Write `state` if the stored revision is still `expected_revision`; Conflict otherwise."""
        key = subjects.agent_key(state.config.tenant_id, state.config.id)
        stored = common_pb2.AgentState()
        stored.CopyFrom(state)
        stored.revision = 0
        try:
            revision = await self.kv.update(key, stored.SerializeToString(), last=expected_revision)
        except KeyWrongLastSequenceError:
            raise Conflict(f"revision conflict: agent {state.config.id} is no longer at revision "
                           f"{expected_revision}") from None
        state.revision = revision
        return state

    async def delete(self, tenant_id: str, agent_id: str) -> None:
        await self.kv.purge(subjects.agent_key(tenant_id, agent_id))

    async def list_ids(self, tenant_id: str) -> list[str]:
        """Agent ids of one tenant (key filter `<tenant>.*`), sorted."""
        check_ref(tenant_id)
        return sorted([e.key.split(".", 1)[1]
                       async for e in live_entries(self.kv, f"{tenant_id}.*", meta_only=True)])
