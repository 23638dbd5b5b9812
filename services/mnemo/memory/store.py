"""Agent state in the NATS KV bucket `mnemo_agents`: one key per agent, AgentState protobuf bytes.

The KV revision is the agent's compare-and-set revision (AgentState.revision is filled on read).
A step's write holds only what the step appended to the queue, on top of the record before it
(state_records.py): a long conversation's queue is not written again at every step.

Reads are served from a cache of the states this replica last read or wrote, kept honest by a
headers-only watch of the bucket: another replica's write drops our copy as soon as we hear of it.
A read racing that notice returns the previous revision; every write is a compare-and-set on the
revision read, so such a read can only cost a conflict (and the conflict drops the copy), never a
lost update.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, TypeVar

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mnemo.common import ids, subjects
from mnemo.common.errors import Conflict, Internal, InvalidArgument, NotFound
from mnemo.common.natsutil import live_entries
from mnemo.memory import state_records
from mnemo.v1 import common_pb2


def check_ref(tenant_id: str, agent_id: str | None = None) -> None:
    """Tenant and agent ids must be single NATS tokens (they are parts of keys and subjects)."""
    if not tenant_id or not ids.is_token(tenant_id):
        raise InvalidArgument(f"invalid tenant_id {tenant_id!r}: 1-64 characters of [A-Za-z0-9_-]")
    if agent_id is not None and (not agent_id or not ids.is_token(agent_id)):
        raise InvalidArgument(f"invalid agent_id {agent_id!r}: 1-64 characters of [A-Za-z0-9_-]")


log = logging.getLogger(__name__)


class Cached(NamedTuple):
    """A record's state as last read or written here."""

    revision: int
    data: bytes   # the whole state's bytes (for an agent: rebuilt from its step records)
    depth: int = 0  # agents: step records since the last whole record (state_records.py)
    queue_span: tuple[int, int] | None = None  # agents: where data holds the queue (state_records.queue_span)


class StateCache:
    """The last known state of recently used keys, invalidated by a bucket watch.

    A state that another replica's write superseded is kept aside (`superseded`, at most a quarter
    as many as the current ones): a reader that rebuilds the newest state from step records can stop
    at it instead of fetching the chain down to a whole record.
    """

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._entries: OrderedDict[str, Cached] = OrderedDict()
        self._superseded: OrderedDict[str, Cached] = OrderedDict()
        # Latest revision heard per key: a read that resumes after a newer write's notice is not cached.
        self._heard: OrderedDict[str, int] = OrderedDict()
        self._sub: Any = None
        self._prefix = ""

    async def watch(self, js: JetStreamContext, bucket: str) -> None:
        """Hear of every write to the bucket from now on (headers only: revision numbers, no values)."""
        self._prefix = f"$KV.{bucket}."
        self._sub = await js.subscribe(f"{self._prefix}>", cb=self._on_write, ordered_consumer=True,
                                       deliver_policy=DeliverPolicy.NEW, headers_only=True)

    async def close(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception as exc:
                log.debug("state cache watch: %s", exc)
            self._sub = None
        self._entries.clear()
        self._superseded.clear()

    @property
    def watching(self) -> bool:
        return self._sub is not None

    async def _on_write(self, msg: Any) -> None:
        key = msg.subject[len(self._prefix):]
        revision = msg.metadata.sequence.stream
        self._heard[key] = max(revision, self._heard.get(key, 0))
        self._heard.move_to_end(key)
        while len(self._heard) > 10 * self.size:
            self._heard.popitem(last=False)
        cached = self._entries.get(key)
        if cached is not None and cached.revision < revision:
            del self._entries[key]
            self._keep_superseded(key, cached)

    def _keep_superseded(self, key: str, cached: Cached) -> None:
        self._superseded[key] = cached
        self._superseded.move_to_end(key)
        while len(self._superseded) > max(1, self.size // 4):
            self._superseded.popitem(last=False)

    def get(self, key: str) -> Cached | None:
        if not self.watching:
            return None
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def superseded(self, key: str) -> Cached | None:
        """The state a later write replaced, if it is still kept (an older revision of `key`)."""
        return self._superseded.get(key) if self.watching else None

    def put(self, key: str, revision: int, data: bytes, depth: int = 0,
            queue_span: tuple[int, int] | None = None) -> None:
        if not self.watching:
            return
        cached = self._entries.get(key)
        if (cached is not None and cached.revision > revision) or self._heard.get(key, 0) > revision:
            return  # a later revision is already known
        self._superseded.pop(key, None)
        self._entries[key] = Cached(revision, data, depth, queue_span)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)
        self._superseded.pop(key, None)


class Revisioned(Protocol):
    """A record stored in a KV bucket whose `revision` is filled in on read (the KV revision)."""

    revision: int

    def SerializeToString(self) -> bytes: ...


R = TypeVar("R", bound=Revisioned)


async def read_cached(kv: KeyValue, cache: StateCache, key: str, parse: Callable[[bytes], R], missing: str,
                      fresh: bool = False) -> R:
    """The record under `key` with `revision` set, from `cache` unless `fresh`, else from `kv`
    (then cached); NotFound(`missing`) when there is none."""
    cached = None if fresh else cache.get(key)
    if cached is not None:
        rec = parse(cached.data)
        rec.revision = cached.revision
        return rec
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        raise NotFound(missing) from None
    if not entry.value or entry.revision is None:
        raise NotFound(missing)
    rec = parse(entry.value)
    rec.revision = entry.revision
    cache.put(key, entry.revision, entry.value)
    return rec


READ_ATTEMPTS = 3  # reads of a chain that a concurrent write cut short, before it counts as broken


class AgentStore:
    """Read and compare-and-set write of agent states.

    `max_depth`: how many step records may follow a whole record (state_records.max_depth of the
    bucket's history); 0 writes whole records only. `consistent`: the same bucket read from its
    stream's leader (`natsutil.leader_view`), for the reads that rebuild a state: on a cluster, a
    replica's direct answer may lag behind the writes, and miss the record a chain needs.
    """

    def __init__(self, kv: KeyValue, cache: StateCache | None = None, max_depth: int = 0,
                 consistent: KeyValue | None = None) -> None:
        self.kv = kv
        self.cache = cache or StateCache()
        self.max_depth = max_depth
        self.reads = consistent or kv
        self.head_steps = 0  # steps written by put_step, without the whole state (figures, tests)

    async def get(self, tenant_id: str, agent_id: str) -> common_pb2.AgentState:
        """The agent's state with `revision` set; NotFound for an unknown (or other tenant's) agent."""
        check_ref(tenant_id, agent_id)
        key = subjects.agent_key(tenant_id, agent_id)
        cached = self.cache.get(key)
        if cached is not None:
            state = common_pb2.AgentState.FromString(cached.data)
            state.revision = cached.revision
            return state
        return await self._read(key, f"agent {agent_id} not found")

    async def config(self, tenant_id: str, agent_id: str) -> common_pb2.AgentConfig:
        """The agent's configuration alone: every record holds it whole, so no chain is read."""
        check_ref(tenant_id, agent_id)
        key = subjects.agent_key(tenant_id, agent_id)
        cached = self.cache.get(key)
        if cached is not None:
            return common_pb2.AgentState.FromString(cached.data).config
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            raise NotFound(f"agent {agent_id} not found") from None
        if not entry.value:
            raise NotFound(f"agent {agent_id} not found")
        return common_pb2.AgentState.FromString(entry.value).config

    async def _read(self, key: str, missing: str) -> common_pb2.AgentState:
        """The newest state of `key` from the bucket, rebuilt from its step records (then cached).

        A write that lands while the chain is read can push the chain's oldest records out of the
        bucket (it keeps `HISTORY` per key, a chain is at most half of that): the read then starts
        again from the newest record.
        """
        for _ in range(READ_ATTEMPTS):
            try:
                entry = await self.reads.get(key)
            except KeyNotFoundError:
                raise NotFound(missing) from None
            if not entry.value or entry.revision is None:
                raise NotFound(missing)
            newest = common_pb2.AgentState.FromString(entry.value)
            if not newest.stored_base:
                self.cache.put(key, entry.revision, entry.value, 0, state_records.queue_span(newest, entry.value))
                newest.revision = entry.revision
                return newest
            state = await self._rebuild(key, newest)
            if state is None:
                continue
            state.revision = 0
            data = state.SerializeToString()
            self.cache.put(key, entry.revision, data, newest.stored_depth, state_records.queue_span(state, data))
            state.revision = entry.revision
            return state
        raise Internal(f"agent state {key} cannot be read: the records its newest record extends are gone "
                       "from the bucket")

    async def _rebuild(self, key: str, newest: common_pb2.AgentState) -> common_pb2.AgentState | None:
        """The whole state that the step record `newest` stands for; None when a base is gone."""
        steps = [newest]  # newest first
        known = self.cache.superseded(key)
        while True:
            base = steps[-1].stored_base
            if known is not None and known.revision == base:
                whole = common_pb2.AgentState.FromString(known.data)
                break
            try:
                older = await self.reads.get(key, revision=base)
            except KeyNotFoundError:
                return None
            record = common_pb2.AgentState.FromString(older.value or b"")
            if not record.stored_base:
                whole = record
                break
            steps.append(record)
        return state_records.rebuild(whole, steps[::-1])

    async def create(self, state: common_pb2.AgentState) -> common_pb2.AgentState:
        key = subjects.agent_key(state.config.tenant_id, state.config.id)
        state.revision = 0
        data = state.SerializeToString()
        span = state_records.queue_span(state, data)
        try:
            revision = await self.kv.create(key, data)
        except KeyWrongLastSequenceError:
            raise Conflict(f"agent {state.config.id} already exists") from None
        state.revision = revision
        self.cache.put(key, revision, data, 0, span)
        return state

    async def put(self, state: common_pb2.AgentState, expected_revision: int) -> common_pb2.AgentState:
        """Write the whole `state` if the stored revision is still `expected_revision`; Conflict
        otherwise (a step that only appends goes through `put_step`)."""
        key = subjects.agent_key(state.config.tenant_id, state.config.id)
        state.revision = 0  # not part of the stored bytes (the KV revision is)
        data = state.SerializeToString()
        span = state_records.queue_span(state, data)
        state.revision = expected_revision
        revision = await self._update(key, data, expected_revision, state.config.id)
        state.revision = revision
        self.cache.put(key, revision, data, 0, span)
        return state

    def head(self, tenant_id: str, agent_id: str) -> tuple[common_pb2.AgentState, Cached] | None:
        """The agent's state without its queue (parsed from the cached bytes around it), and the
        cached entry it comes from; None unless the cache holds the state with its queue's place."""
        check_ref(tenant_id, agent_id)
        cached = self.cache.get(subjects.agent_key(tenant_id, agent_id))
        if cached is None or cached.queue_span is None:
            return None
        start, end = cached.queue_span
        state = common_pb2.AgentState.FromString(cached.data[:start] + cached.data[end:])
        state.revision = cached.revision
        return state, cached

    async def put_step(self, state: common_pb2.AgentState, base: Cached,
                       appended: Sequence[common_pb2.Message]) -> common_pb2.AgentState:
        """Write a step on top of `base` (from `head`): `state` is that state without its queue,
        changed by the step, and its queue holds just the step's `appended` messages. The whole
        state is neither parsed nor serialized: its bytes are the new head's, then the queue's bytes
        of `base`, then the appended messages'. Conflict if the agent moved past `base`."""
        assert base.queue_span is not None
        key = subjects.agent_key(state.config.tenant_id, state.config.id)
        start, end = base.queue_span
        depth = base.depth + 1 if base.depth < self.max_depth else 0
        state.revision = 0
        record = b""
        if depth:
            state.stored_base, state.stored_depth = base.revision, depth
            record = state.SerializeToString()
            state.stored_base = state.stored_depth = 0
        del state.queue[:]
        head = state.SerializeToString()
        state.queue.extend(appended)
        whole = b"".join((head, base.data[start:end], state_records.queue_entries(appended)))
        state.revision = base.revision
        revision = await self._update(key, record or whole, base.revision, state.config.id)
        state.revision = revision
        self.cache.put(key, revision, whole, depth, (len(head), len(whole)))
        self.head_steps += 1
        return state

    async def _update(self, key: str, record: bytes, expected_revision: int, agent_id: str) -> int:
        try:
            return await self.kv.update(key, record, last=expected_revision)
        except KeyWrongLastSequenceError:
            self.cache.drop(key)
            raise Conflict(f"revision conflict: agent {agent_id} is no longer at revision "
                           f"{expected_revision}") from None

    async def delete(self, tenant_id: str, agent_id: str) -> None:
        key = subjects.agent_key(tenant_id, agent_id)
        self.cache.drop(key)
        await self.kv.purge(key)
        self.cache.drop(key)

    async def list_ids(self, tenant_id: str) -> list[str]:
        """Agent ids of one tenant (key filter `<tenant>.*`), sorted."""
        check_ref(tenant_id)
        return sorted([e.key.split(".", 1)[1]
                       async for e in live_entries(self.kv, f"{tenant_id}.*", meta_only=True)])
