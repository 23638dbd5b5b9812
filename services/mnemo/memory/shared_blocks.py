"""Shared blocks: core-memory blocks of a tenant that several agents attach (docs/architecture.md).

Storage: the KV bucket `mnemo_blocks`, key `<tenant>.<block id>`, value a `SharedBlock` protobuf (value,
limit, the index of attached agents, the ids of the last edits); the KV revision is the block's own
compare-and-set revision. An agent's state holds a reference (a block with `shared_id`, no value);
every read of the agent (GetContext, GetAgent, core memory, export) fills in the block's current
value, limit and the names of the other agents sharing it. Reads go through a cache of recent
blocks kept honest by a watch of the bucket, as agent states are.

Edits never go through the agent's CommitStep (which covers one agent's state): each edit is an
operation (set, append, replace) applied to the block's latest value and written with a
compare-and-set on the block's revision, re-read and re-applied on a conflict, so concurrent edits
from any number of agents and users all land. The character limit is checked against the value each
attempt would write. A `replace` whose text another writer removed fails, and the agent is told to
read the block again. An agent's edit carries an id derived from its step and call
(`<agent>/<turn>:<step>:<call>`): a step redone after a lost commit repeats its edits, and a
repeated id is not applied twice. Which agents are attached is the agents' states; the list in the
block is an index for listing and display, kept in step on attach, detach, restore, import and
delete (a listing checks each entry against the agent's state).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from nats.js import JetStreamContext
from nats.js.errors import APIError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mnemo.common import ids, subjects
from mnemo.common.errors import Conflict, FailedPrecondition, InvalidArgument, NotFound
from mnemo.common.natsutil import live_entries
from mnemo.memory import blocks as core
from mnemo.memory.agents import Agents, paginate
from mnemo.memory.checkpoints import Checkpoints
from mnemo.memory.store import StateCache, check_ref, read_cached
from mnemo.v1 import common_pb2, memory_pb2

log = logging.getLogger(__name__)

CAS_RETRIES = 64          # attempts of one edit under contention (each re-reads the block)
RECENT_EDITS = 64         # edit ids remembered per block
OPS = ("set", "append", "replace")


def check_block_id(block_id: str) -> None:
    if not block_id or not ids.is_token(block_id):
        raise NotFound(f"block {block_id!r} not found")


def shared_ids(state: common_pb2.AgentState) -> set[str]:
    return {b.shared_id for b in state.blocks if b.shared_id}


def _reference(label: str, block_id: str, limit: int) -> common_pb2.MemoryBlock:
    return common_pb2.MemoryBlock(label=label, shared_id=block_id, limit=limit)


class SharedBlocks:
    """The tenant's shared blocks over the KV bucket, and their links to agents."""

    def __init__(self, kv: KeyValue, agents: Agents, checkpoints: Checkpoints) -> None:
        self.kv = kv
        self.agents = agents
        self.checkpoints = checkpoints
        self.cache = StateCache()

    async def watch(self, js: JetStreamContext) -> None:
        await self.cache.watch(js, subjects.KV_BLOCKS)

    async def close(self) -> None:
        await self.cache.close()

    # ---- records -------------------------------------------------------------------------------

    async def get(self, tenant_id: str, block_id: str, *, fresh: bool = False) -> memory_pb2.SharedBlock:
        """The block with `revision` set; NotFound for an unknown (or another tenant's) block."""
        check_ref(tenant_id)
        check_block_id(block_id)
        return await read_cached(self.kv, self.cache, subjects.block_key(tenant_id, block_id),
                                 memory_pb2.SharedBlock.FromString, f"block {block_id} not found", fresh=fresh)

    async def _write(self, rec: memory_pb2.SharedBlock) -> memory_pb2.SharedBlock:
        """Compare-and-set on `rec.revision`; Conflict when another writer was first."""
        key = subjects.block_key(rec.tenant_id, rec.id)
        expected = rec.revision
        rec.revision = 0
        data = rec.SerializeToString()
        try:
            revision = await self.kv.update(key, data, last=expected)
        except KeyWrongLastSequenceError:
            self.cache.drop(key)
            raise Conflict(f"block {rec.id} changed meanwhile") from None
        rec.revision = revision
        self.cache.put(key, revision, data)
        return rec

    async def _change(self, tenant_id: str, block_id: str,
                      change: Callable[[memory_pb2.SharedBlock], bool]) -> memory_pb2.SharedBlock:
        """Read, change (`change` returns False: nothing to write), compare-and-set; redone on conflicts."""
        for attempt in range(CAS_RETRIES):
            rec = await self.get(tenant_id, block_id, fresh=attempt > 0)
            if not change(rec):
                return rec
            try:
                return await self._write(rec)
            except Conflict:
                if attempt >= 4:  # many writers at once: spread the next attempts a little
                    await asyncio.sleep(random.uniform(0, 0.002 * attempt))
        raise Conflict(f"block {block_id} kept changing; try again")

    async def create(self, req: memory_pb2.CreateSharedBlockRequest) -> memory_pb2.SharedBlock:
        check_ref(req.tenant_id)
        block = core.make_block(req.label, req.value, req.limit)  # label, limit and value checked
        now = ids.now_iso()
        rec = memory_pb2.SharedBlock(id=ids.new_id("block"), tenant_id=req.tenant_id, label=block.label,
                                     value=block.value, limit=block.limit, created_at=now, updated_at=now)
        data = rec.SerializeToString()
        rec.revision = await self.kv.create(subjects.block_key(req.tenant_id, rec.id), data)
        return rec

    async def list_blocks(self, req: memory_pb2.ListSharedBlocksRequest) -> memory_pb2.ListSharedBlocksResponse:
        check_ref(req.tenant_id)
        page, size = paginate(req.page, req.page_size, 50)
        keys = sorted([e.key async for e in live_entries(self.kv, f"{req.tenant_id}.*", meta_only=True)])
        resp = memory_pb2.ListSharedBlocksResponse(total=len(keys), page=page, page_size=size)
        for key in keys[(page - 1) * size: page * size]:
            try:
                resp.blocks.append(await self.get(req.tenant_id, key.split(".", 1)[1]))
            except NotFound:  # deleted meanwhile
                continue
        return resp

    async def update(self, req: memory_pb2.UpdateSharedBlockRequest) -> memory_pb2.SharedBlock:
        """One edit (see the module docstring); the block after it."""
        op = req.op or "set"
        if op not in OPS:
            raise InvalidArgument(f"unknown op {op!r}: set, append or replace")
        if req.limit < 0 or req.limit > core.MAX_LIMIT:
            raise InvalidArgument(f"block limit must be between 1 and {core.MAX_LIMIT}, got {req.limit}")
        if op != "set" and not req.HasField("value"):
            raise InvalidArgument(f"{op} needs a value")
        if op == "replace" and not req.old:
            raise InvalidArgument("replace needs the text to replace (old)")
        if len(req.edit_id) > 300:
            raise InvalidArgument("edit_id longer than 300 characters")

        def edit(rec: memory_pb2.SharedBlock) -> bool:
            if req.agent_id and req.agent_id not in {a.agent_id for a in rec.agents}:
                raise FailedPrecondition(f"block {rec.id} is not attached to agent {req.agent_id}")
            if req.edit_id and req.edit_id in rec.recent_edits:
                return False  # applied already (a step redone)
            if op == "set":
                value = req.value if req.HasField("value") else rec.value
            elif op == "append":
                value = f"{rec.value}\n{req.value}" if rec.value else req.value
            else:
                if req.old not in rec.value:
                    raise InvalidArgument(f"text to replace not found in block {rec.label!r}: {req.old!r} "
                                          "(it may just have been changed by another agent: read it again)")
                value = rec.value.replace(req.old, req.value)
            limit = req.limit or rec.limit
            core.check_limit(rec.label, value, limit)
            rec.value, rec.limit, rec.updated_at = value, limit, ids.now_iso()
            if req.edit_id:
                rec.recent_edits.append(req.edit_id)
                del rec.recent_edits[:-RECENT_EDITS]
            return True

        return await self._change(req.ref.tenant_id, req.ref.block_id, edit)

    async def delete(self, ref: memory_pb2.SharedBlockRef) -> None:
        """Delete a block no agent is attached to (FailedPrecondition otherwise)."""
        for _ in range(CAS_RETRIES):
            rec = await self.get(ref.tenant_id, ref.block_id, fresh=True)
            attached = await self._verified(rec)
            if attached:
                raise FailedPrecondition(f"block {rec.id} is attached to {len(attached)} agent(s) "
                                         f"({', '.join(a.agent_id for a in attached[:5])}); detach it first")
            try:
                await self.kv.delete(subjects.block_key(ref.tenant_id, ref.block_id), last=rec.revision)
            except APIError:
                continue  # attached (or edited) meanwhile: look again
            await self.kv.purge(subjects.block_key(ref.tenant_id, ref.block_id))
            self.cache.drop(subjects.block_key(ref.tenant_id, ref.block_id))
            return
        raise Conflict(f"block {ref.block_id} kept changing; try again")

    async def _verified(self, rec: memory_pb2.SharedBlock) -> list[memory_pb2.SharedBlockAgent]:
        """The index entries whose agent's state does reference the block."""
        out = []
        for a in rec.agents:
            try:
                state = await self.agents.store.get(rec.tenant_id, a.agent_id)
            except (NotFound, InvalidArgument):
                continue
            if rec.id in shared_ids(state):
                out.append(a)
        return out

    async def agents_of(self, ref: memory_pb2.SharedBlockRef) -> memory_pb2.ListSharedBlockAgentsResponse:
        rec = await self.get(ref.tenant_id, ref.block_id)
        return memory_pb2.ListSharedBlockAgentsResponse(agents=await self._verified(rec))

    # ---- links ---------------------------------------------------------------------------------

    async def _link(self, tenant_id: str, block_id: str, agent_id: str, name: str) -> memory_pb2.SharedBlock:
        def add(rec: memory_pb2.SharedBlock) -> bool:
            for a in rec.agents:
                if a.agent_id == agent_id:
                    if a.name == name:
                        return False
                    a.name = name
                    return True
            rec.agents.add(agent_id=agent_id, name=name, attached_at=ids.now_iso())
            return True
        return await self._change(tenant_id, block_id, add)

    async def _unlink(self, tenant_id: str, block_id: str, agent_id: str) -> None:
        def remove(rec: memory_pb2.SharedBlock) -> bool:
            kept = [a for a in rec.agents if a.agent_id != agent_id]
            if len(kept) == len(rec.agents):
                return False
            del rec.agents[:]
            rec.agents.extend(kept)
            return True
        try:
            await self._change(tenant_id, block_id, remove)
        except NotFound:
            pass

    async def attach(self, req: memory_pb2.AttachSharedBlockRequest) -> memory_pb2.AttachSharedBlockResponse:
        """Attach the block to the agent. A block of the same label is replaced; when it was the agent's
        own, a checkpoint holding it is taken first (of the very state the attach replaces)."""
        tenant_id, agent_id = req.ref.tenant_id, req.ref.agent_id
        state = await self.agents.store.get(tenant_id, agent_id)
        rec = await self.get(tenant_id, req.block_id)
        rec = await self._link(tenant_id, rec.id, agent_id, state.config.name)
        checkpoint_id = ids.new_id("ckpt")
        replaced: list[common_pb2.MemoryBlock] = []
        saved: list[str] = []

        async def put_in(st: common_pb2.AgentState) -> None:
            del replaced[:]
            current = core.find_block(st, rec.label)
            if current is not None and current.shared_id == rec.id:
                return  # attached already
            if current is not None:
                replaced.append(common_pb2.MemoryBlock(label=current.label, shared_id=current.shared_id))
                if not current.shared_id:
                    cp = await self.checkpoints.save(
                        st, f"before attaching block {rec.id} as {rec.label!r}", checkpoint_id)
                    saved[:] = [cp.id]
                current.CopyFrom(_reference(rec.label, rec.id, rec.limit))
            else:
                st.blocks.append(_reference(rec.label, rec.id, rec.limit))
            st.last_memory_edit_at = ids.now_iso()

        try:
            await self.agents.modify(tenant_id, agent_id, put_in)
        except BaseException:
            try:
                attached = rec.id in shared_ids(await self.agents.store.get(tenant_id, agent_id))
            except NotFound:
                attached = False
            if not attached:
                await self._unlink(tenant_id, rec.id, agent_id)
            raise
        for old in replaced:
            if old.shared_id:  # another shared block had the label: this agent leaves its index
                await self._unlink(tenant_id, old.shared_id, agent_id)
        return memory_pb2.AttachSharedBlockResponse(block=rec, replaced=bool(replaced),
                                                    checkpoint_id=saved[0] if saved and replaced else "")

    async def detach(self, req: memory_pb2.AttachSharedBlockRequest) -> None:
        """Remove the block from the agent's core memory (the block itself stays)."""
        tenant_id, agent_id = req.ref.tenant_id, req.ref.agent_id
        check_block_id(req.block_id)

        def take_out(st: common_pb2.AgentState) -> None:
            kept = [b for b in st.blocks if b.shared_id != req.block_id]
            if len(kept) == len(st.blocks):
                raise NotFound(f"block {req.block_id} is not attached to agent {agent_id}")
            del st.blocks[:]
            st.blocks.extend(kept)
            st.last_memory_edit_at = ids.now_iso()

        await self.agents.modify(tenant_id, agent_id, take_out)
        await self._unlink(tenant_id, req.block_id, agent_id)

    # ---- agent states --------------------------------------------------------------------------

    async def resolve(self, state: common_pb2.AgentState) -> None:
        """Fill in the value, limit and sharers of every shared block of `state` (a read's copy)."""
        for b in state.blocks:
            if not b.shared_id:
                continue
            try:
                rec = await self.get(state.config.tenant_id, b.shared_id)
            except NotFound:
                log.warning("agent %s references the missing block %s", state.config.id, b.shared_id)
                continue
            b.value, b.limit = rec.value, rec.limit
            del b.shared_with[:]
            b.shared_with.extend(a.name or a.agent_id for a in rec.agents if a.agent_id != state.config.id)

    async def restorable(self, saved: common_pb2.AgentState) -> None:
        """A saved state's shared blocks as they can come back: references to blocks that exist,
        the agent's own copy (the saved value) of deleted ones."""
        for b in saved.blocks:
            if not b.shared_id:
                continue
            try:
                rec = await self.get(saved.config.tenant_id, b.shared_id)
            except NotFound:
                b.shared_id = ""
                del b.shared_with[:]
                continue
            b.CopyFrom(_reference(b.label, rec.id, rec.limit))

    async def relink(self, state: common_pb2.AgentState) -> None:
        """List the agent in the index of every block its state references."""
        for block_id in sorted(shared_ids(state)):
            try:
                await self._link(state.config.tenant_id, block_id, state.config.id, state.config.name)
            except NotFound:
                continue

    async def unlink_dropped(self, before: common_pb2.AgentState, after: common_pb2.AgentState) -> None:
        for block_id in sorted(shared_ids(before) - shared_ids(after)):
            await self._unlink(before.config.tenant_id, block_id, before.config.id)

    async def unlink_all(self, state: common_pb2.AgentState) -> None:
        """The agent is being deleted: it leaves every index."""
        for block_id in sorted(shared_ids(state)):
            await self._unlink(state.config.tenant_id, block_id, state.config.id)
