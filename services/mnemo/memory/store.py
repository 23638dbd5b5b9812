"""Agent state in the NATS KV bucket `mnemo_agents`: one key per agent, AgentState protobuf bytes.

The KV revision is the agent's compare-and-set revision (AgentState.revision is filled on read).

Reads are served from a cache of the states this replica last read or wrote, kept honest by a
headers-only watch of the bucket: another replica's write drops our copy as soon as we hear of it.
A read racing that notice returns the previous revision; every write is a compare-and-set on the
revision read, so such a read can only cost a conflict (and the conflict drops the copy), never a
lost update.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mnemo.common import ids, subjects
from mnemo.common.errors import Conflict, InvalidArgument, NotFound
from mnemo.common.natsutil import live_entries
from mnemo.v1 import common_pb2


def check_ref(tenant_id: str, agent_id: str | None = None) -> None:
    """Tenant and agent ids must be single NATS tokens (they are parts of keys and subjects)."""
    if not tenant_id or not ids.is_token(tenant_id):
        raise InvalidArgument(f"invalid tenant_id {tenant_id!r}: 1-64 characters of [A-Za-z0-9_-]")
    if agent_id is not None and (not agent_id or not ids.is_token(agent_id)):
        raise InvalidArgument(f"invalid agent_id {agent_id!r}: 1-64 characters of [A-Za-z0-9_-]")


log = logging.getLogger(__name__)


class StateCache:
    """The last known (revision, bytes) of recently used agents, invalidated by a bucket watch."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._entries: OrderedDict[str, tuple[int, bytes]] = OrderedDict()
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
        if cached is not None and cached[0] < revision:
            del self._entries[key]

    def get(self, key: str) -> tuple[int, bytes] | None:
        if not self.watching:
            return None
        found = self._entries.get(key)
        if found is not None:
            self._entries.move_to_end(key)
        return found

    def put(self, key: str, revision: int, data: bytes) -> None:
        if not self.watching:
            return
        cached = self._entries.get(key)
        if (cached is not None and cached[0] > revision) or self._heard.get(key, 0) > revision:
            return  # a later revision is already known
        self._entries[key] = (revision, data)
        self._entries.move_to_end(key)
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def drop(self, key: str) -> None:
        self._entries.pop(key, None)


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
        rec = parse(cached[1])
        rec.revision = cached[0]
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


class AgentStore:
    """Read and compare-and-set write of agent states."""

    def __init__(self, kv: KeyValue, cache: StateCache | None = None) -> None:
        self.kv = kv
        self.cache = cache or StateCache()

    async def get(self, tenant_id: str, agent_id: str) -> common_pb2.AgentState:
        """The agent's state with `revision` set; NotFound for an unknown (or other tenant's) agent."""
        check_ref(tenant_id, agent_id)
        return await read_cached(self.kv, self.cache, subjects.agent_key(tenant_id, agent_id),
                                 common_pb2.AgentState.FromString, f"agent {agent_id} not found")

    async def create(self, state: common_pb2.AgentState) -> common_pb2.AgentState:
        key = subjects.agent_key(state.config.tenant_id, state.config.id)
        state.revision = 0
        data = state.SerializeToString()
        try:
            revision = await self.kv.create(key, data)
        except KeyWrongLastSequenceError:
            raise Conflict(f"agent {state.config.id} already exists") from None
        state.revision = revision
        self.cache.put(key, revision, data)
        return state

    async def put(self, state: common_pb2.AgentState, expected_revision: int) -> common_pb2.AgentState:
        """Write `state` if the stored revision is still `expected_revision`; Conflict otherwise."""
        key = subjects.agent_key(state.config.tenant_id, state.config.id)
        state.revision = 0  # not part of the stored bytes (the KV revision is)
        data = state.SerializeToString()
        state.revision = expected_revision
        try:
            revision = await self.kv.update(key, data, last=expected_revision)
        except KeyWrongLastSequenceError:
            self.cache.drop(key)
            raise Conflict(f"revision conflict: agent {state.config.id} is no longer at revision "
                           f"{expected_revision}") from None
        state.revision = revision
        self.cache.put(key, revision, data)
        return state

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
