"""User edits of an agent's main context between steps: core memory blocks (shared blocks edited
through their agent), removing the last queue messages, rewriting a reply. Each is a read-change-CAS
write of the agent's state (`Agents.modify`)."""

from __future__ import annotations

import json

from mnemo.common import ids, subjects, telemetry
from mnemo.common.errors import FailedPrecondition, InvalidArgument, NotFound
from mnemo.memory import blocks as core
from mnemo.memory.agents import Agents
from mnemo.v1 import common_pb2, memory_pb2


class CoreEdits:
    """Core memory and queue edits of one agent at a time."""

    def __init__(self, agents: Agents) -> None:
        self.agents = agents

    async def core_memory(self, tenant_id: str, agent_id: str) -> memory_pb2.CoreMemory:
        state = await self.agents.store.get(tenant_id, agent_id)
        await self.agents.resolve_shared(state)
        return memory_pb2.CoreMemory(
            blocks=state.blocks, summary=state.summary, last_memory_edit_at=state.last_memory_edit_at,
            counts=memory_pb2.MemoryCounts(recall=state.recall_count, archival=state.archival_count,
                                           queue=len(state.queue)))

    async def update_block(self, req: memory_pb2.UpdateBlockRequest) -> common_pb2.MemoryBlock:
        core.check_label(req.label)
        if req.limit < 0:
            raise InvalidArgument("limit must be >= 0")
        result: list[common_pb2.MemoryBlock] = []
        shared: list[str] = []

        def change(state: common_pb2.AgentState) -> None:
            current = core.find_block(state, req.label)
            if current is not None and current.shared_id:
                shared[:] = [current.shared_id]
                raise _SharedBlock()
            result[:] = [core.edit_block(state, req.label, req.op, req.value, req.old, req.limit)]
            state.last_memory_edit_at = ids.now_iso()

        try:
            await self.agents.modify(req.ref.tenant_id, req.ref.agent_id, change)
        except _SharedBlock:
            return await self._update_shared(req, shared[0])
        out = common_pb2.MemoryBlock()
        out.CopyFrom(result[0])
        return out

    async def _update_shared(self, req: memory_pb2.UpdateBlockRequest, block_id: str) -> common_pb2.MemoryBlock:
        """An edit of a shared block through one of its agents: the block's own edit (all its agents see it)."""
        assert self.agents.shared is not None, "a state references a shared block: the service set `shared`"
        tenant_id, agent_id = req.ref.tenant_id, req.ref.agent_id
        rec = await self.agents.shared.update(memory_pb2.UpdateSharedBlockRequest(
            ref=memory_pb2.SharedBlockRef(tenant_id=tenant_id, block_id=block_id), op=req.op or "set",
            value=req.value, old=req.old, limit=req.limit))
        out = common_pb2.MemoryBlock(label=rec.label, value=rec.value, limit=rec.limit, shared_id=rec.id)
        out.shared_with.extend(a.name or a.agent_id for a in rec.agents if a.agent_id != agent_id)
        return out

    async def pop_messages(self, req: memory_pb2.PopMessagesRequest) -> memory_pb2.PopMessagesResponse:
        count = req.count or 1
        if count < 0:
            raise InvalidArgument("count must be >= 1")
        removed: list[common_pb2.Message] = []

        def change(state: common_pb2.AgentState) -> None:
            if state.turn.pending_calls and not state.turn.completed:
                raise FailedPrecondition("the agent's turn is paused on calls: answer them (tool results, "
                                         "approvals) before removing messages")
            n = min(count, len(state.queue))
            removed[:] = [m for m in state.queue[len(state.queue) - n:]]
            kept = list(state.queue[:len(state.queue) - n])
            del state.queue[:]
            state.queue.extend(kept)

        await self.agents.modify(req.ref.tenant_id, req.ref.agent_id, change)
        return memory_pb2.PopMessagesResponse(removed=removed)

    async def rewrite_message(self, req: memory_pb2.RewriteMessageRequest) -> common_pb2.Message:
        """Rewrite a queue message (default: the last assistant reply); recall gets the new text too."""
        rewritten: list[common_pb2.Message] = []

        def change(state: common_pb2.AgentState) -> None:
            target = _find_rewrite_target(state, req.message_id)
            _rewrite(target, req.text)
            rewritten[:] = [common_pb2.Message()]
            rewritten[0].CopyFrom(target)

        await self.agents.modify(req.ref.tenant_id, req.ref.agent_id, change)
        msg = rewritten[0]
        # A new Nats-Msg-Id so the stream keeps it; the index upserts by message id.
        headers_id = f"{msg.id}.rw-{ids.new_id('r')}"
        await self.agents.commitlog.js.publish(
            subjects.messages_subject(req.ref.tenant_id, req.ref.agent_id), msg.SerializeToString(),
            headers={**telemetry.inject(), "Nats-Msg-Id": headers_id})
        return msg


class _SharedBlock(Exception):
    """The block a user edit names is a shared block: the edit goes to it instead."""


def _find_rewrite_target(state: common_pb2.AgentState, message_id: str) -> common_pb2.Message:
    if message_id:
        for m in state.queue:
            if m.id == message_id:
                return m
        raise NotFound(f"message {message_id} not found in the queue")
    for m in reversed(state.queue):
        if m.role == "assistant" and (_reply_call(m) is not None or m.text):
            return m
    raise NotFound("no assistant reply in the queue to rewrite")


def _reply_call(m: common_pb2.Message) -> common_pb2.ToolCall | None:
    return next((c for c in m.tool_calls if c.name == "send_message"), None)


def _rewrite(m: common_pb2.Message, text: str) -> None:
    m.tokens = 0  # counted again with the new text
    call = _reply_call(m) if m.role == "assistant" else None
    if call is None:
        m.text = text
        return
    try:
        args = json.loads(call.arguments or "{}")
        if not isinstance(args, dict):
            args = {}
    except ValueError:
        args = {}
    args["message"] = text
    call.arguments = json.dumps(args, ensure_ascii=False)
