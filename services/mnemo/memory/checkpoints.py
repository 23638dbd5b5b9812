"""Named checkpoints of an agent's state in the KV bucket `mnemo_checkpoints`,
key `<tenant>.<agent>.<checkpoint id>`.

Restoring brings back the state (config, core memory, summary, queue) as a new revision: the
revision moves forward, so a step in flight fails its compare-and-set instead of overwriting it.
Recall and archival memory are NOT rolled back: they are append-only histories (messages after the
checkpoint stay searchable in recall; passages inserted after it stay in archival).
"""

from __future__ import annotations

import base64
import json

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from mnemo.common import ids
from mnemo.common.errors import InvalidArgument, NotFound
from mnemo.common.natsutil import live_entries
from mnemo.memory.agents import Agents, public
from mnemo.memory.steps import close_open_calls
from mnemo.v1 import common_pb2, memory_pb2

MAX_NAME_CHARS = 200


class Checkpoints:
    def __init__(self, kv: KeyValue, agents: Agents) -> None:
        self.kv = kv
        self.agents = agents

    async def create(self, req: memory_pb2.CreateCheckpointRequest) -> common_pb2.Checkpoint:
        state = await self.agents.store.get(req.ref.tenant_id, req.ref.agent_id)
        if len(req.name) > MAX_NAME_CHARS:
            raise InvalidArgument(f"checkpoint name longer than {MAX_NAME_CHARS} characters")
        return await self.save(state, req.name)

    async def save(self, state: common_pb2.AgentState, name: str = "",
                   checkpoint_id: str = "") -> common_pb2.Checkpoint:
        """Checkpoint `state` as it is (a state read moments ago, or one about to be replaced); saving
        again under the same `checkpoint_id` replaces that checkpoint. Shared blocks are kept as
        references, with their values of the moment for the record."""
        now = ids.now_iso()
        cp = common_pb2.Checkpoint(id=checkpoint_id or ids.new_id("ckpt"), name=name[:MAX_NAME_CHARS] or now,
                                   created_at=now, revision=state.revision)
        saved = common_pb2.AgentState()
        saved.CopyFrom(state)
        del saved.commit_outbox[:]
        if self.agents.shared is not None:
            await self.agents.shared.resolve(saved)
        record = {"checkpoint": base64.b64encode(cp.SerializeToString()).decode(),
                  "state": base64.b64encode(saved.SerializeToString()).decode()}
        await self.kv.put(f"{state.config.tenant_id}.{state.config.id}.{cp.id}", json.dumps(record).encode())
        return cp

    async def _load(self, tenant_id: str, agent_id: str,
                    checkpoint_id: str) -> tuple[common_pb2.Checkpoint, common_pb2.AgentState]:
        if not ids.is_token(checkpoint_id):
            raise InvalidArgument(f"invalid checkpoint id {checkpoint_id!r}")
        try:
            entry = await self.kv.get(f"{tenant_id}.{agent_id}.{checkpoint_id}")
        except KeyNotFoundError:
            raise NotFound(f"checkpoint {checkpoint_id} not found") from None
        if not entry.value:
            raise NotFound(f"checkpoint {checkpoint_id} not found")
        record = json.loads(entry.value)
        return (common_pb2.Checkpoint.FromString(base64.b64decode(record["checkpoint"])),
                common_pb2.AgentState.FromString(base64.b64decode(record["state"])))

    async def list(self, tenant_id: str, agent_id: str) -> memory_pb2.ListCheckpointsResponse:
        await self.agents.store.get(tenant_id, agent_id)
        found: list[common_pb2.Checkpoint] = []
        async for entry in live_entries(self.kv, f"{tenant_id}.{agent_id}.*"):  # each has a value
            record = json.loads(entry.value or b"")
            found.append(common_pb2.Checkpoint.FromString(base64.b64decode(record["checkpoint"])))
        found.sort(key=lambda c: (c.created_at, c.id), reverse=True)
        return memory_pb2.ListCheckpointsResponse(checkpoints=found)

    async def restore(self, req: memory_pb2.RestoreCheckpointRequest) -> common_pb2.AgentState:
        """The checkpoint's config, blocks, summary and queue as a new revision. Shared blocks come
        back as attachments while the block exists (with its current value), as the agent's own block
        with the value of the moment once it was deleted; one attached since and not in the
        checkpoint is detached."""
        current = await self.agents.store.get(req.ref.tenant_id, req.ref.agent_id)
        _, saved = await self._load(req.ref.tenant_id, req.ref.agent_id, req.checkpoint_id)
        shared = self.agents.shared
        if shared is not None:
            await shared.restorable(saved)
            await shared.relink(saved)   # before the write: listed while attached

        closed: list[common_pb2.Message] = []

        def restore(state: common_pb2.AgentState) -> None:
            del closed[:]
            config = common_pb2.AgentConfig()
            config.CopyFrom(saved.config)
            # Identity and embedding space are the live agent's.
            for field in ("id", "tenant_id", "created_at", "embedding_model", "embedding_dim"):
                setattr(config, field, getattr(state.config, field))
            state.config.CopyFrom(config)
            del state.blocks[:]
            state.blocks.extend(saved.blocks)
            state.summary = saved.summary
            del state.queue[:]
            state.queue.extend(saved.queue)
            state.last_memory_edit_at = ids.now_iso()
            state.memory_warning_sent = saved.memory_warning_sent
            del state.pending_events[:]
            state.turn.Clear()
            closed.extend(close_open_calls(state, "not answered: a checkpoint was restored while waiting for it"))
            state.recall_count += len(closed)

        restored = public(await self.agents.modify(req.ref.tenant_id, req.ref.agent_id, restore))
        if closed:  # the returns reach recall too
            await self.agents.commitlog.publish(req.ref.tenant_id, req.ref.agent_id, closed)
        if shared is not None:
            await shared.unlink_dropped(current, restored)
            await shared.resolve(restored)
        return restored

    async def delete_all(self, tenant_id: str, agent_id: str) -> None:
        """Remove every checkpoint of the agent (DeleteAgent)."""
        keys = [e.key async for e in live_entries(self.kv, f"{tenant_id}.{agent_id}.*", meta_only=True)]
        for key in keys:
            await self.kv.purge(key)
