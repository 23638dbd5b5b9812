"""NATS connection and the JetStream streams / KV buckets of docs/architecture.md, created idempotently."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from typing import ClassVar

import nats
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import (
    DiscardPolicy,
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)
from nats.js.errors import BadRequestError, NoKeysError, NotFoundError
from nats.js.kv import KeyValue

from mnemo.common import subjects

KvEntry = KeyValue.Entry

log = logging.getLogger(__name__)

DAY = 24 * 3600.0

STREAMS: list[StreamConfig] = [
    StreamConfig(
        name=subjects.TURNS_STREAM,
        subjects=["mnemo.turns.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=120.0,
        description="turn requests, gateway -> orchestrators (work queue, dedup by turn id)",
    ),
    StreamConfig(
        name=subjects.EVENTS_STREAM,
        subjects=["mnemo.events.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=7 * DAY,
        max_bytes=1 << 30,
        discard=DiscardPolicy.OLD,
        duplicate_window=120.0,
        description="agent events: live streaming, resume by sequence, audit",
    ),
    StreamConfig(
        name=subjects.MESSAGES_STREAM,
        subjects=["mnemo.messages.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        duplicate_window=120.0,
        description="commit log of every agent message; recall memory is indexed from it",
    ),
    StreamConfig(
        name=subjects.USAGE_STREAM,
        subjects=["mnemo.usage.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        max_age=90 * DAY,
        description="one record per model call (usage metering)",
    ),
    StreamConfig(
        name=subjects.CONSOLIDATION_STREAM,
        subjects=["mnemo.consolidate.>"],
        retention=RetentionPolicy.WORK_QUEUE,
        storage=StorageType.FILE,
        duplicate_window=120.0,
        description="memory consolidation requests, memory / gateway -> orchestrators (work queue)",
    ),
]

KV_BUCKETS: list[KeyValueConfig] = [
    KeyValueConfig(bucket=subjects.KV_AGENTS, history=16, storage=StorageType.FILE,
                   max_value_size=8 << 20, description="agent state (CAS per step)"),
    KeyValueConfig(bucket=subjects.KV_LEASES, history=1, ttl=30.0, storage=StorageType.MEMORY,
                   description="per-agent step leases"),
    KeyValueConfig(bucket=subjects.KV_TENANTS, history=1, storage=StorageType.FILE,
                   description="tenants and hashed API keys"),
    KeyValueConfig(bucket=subjects.KV_TEMPLATES, history=1, storage=StorageType.FILE,
                   description="persona / human / preset templates"),
    KeyValueConfig(bucket=subjects.KV_CHECKPOINTS, history=1, storage=StorageType.FILE,
                   max_value_size=8 << 20, description="agent checkpoints"),
    KeyValueConfig(bucket=subjects.KV_MCP_SERVERS, history=1, storage=StorageType.FILE,
                   description="MCP servers registered by tenants"),
    KeyValueConfig(bucket=subjects.KV_BLOCKS, history=1, storage=StorageType.FILE,
                   max_value_size=1 << 20, description="shared core-memory blocks (CAS per edit)"),
    KeyValueConfig(bucket=subjects.KV_PASSAGE_CLAIMS, history=1, ttl=3600.0, storage=StorageType.FILE,
                   description="archival dedup: atomic claims of passage texts"),
]


async def quietly(aw: Awaitable[object]) -> None:
    """Await an ack, nak, term or unsubscribe whose loss needs no handling (JetStream redelivers an
    unacked message after ack_wait; a lost unsubscribe ends with its connection)."""
    try:
        await aw
    except Exception as exc:
        log.debug("not delivered: %s", exc)


async def connect(url: str, name: str, shared: bool = False) -> NATS:
    """Connect to NATS with reconnects forever (a restart of the server is survived).

    `shared`: the services of one process (the combined layout) use one connection: one socket and
    one read loop, and what they publish at the same moment goes out in one write. Each service's
    `drain()` / `close()` lets go of it; the last one closes it.
    """
    if shared:
        return await SharedConnection.acquire(url)
    return await _connect(url, name)


async def _connect(url: str, name: str) -> NATS:
    return await nats.connect(
        servers=url.split(","),
        name=name,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.5,
        connect_timeout=5,
        allow_reconnect=True,
    )


class SharedConnection:
    """A NATS connection shared by the services of one process; everything but `drain` and `close`
    (which let go of it) is the connection's own."""

    _by_url: ClassVar[dict[str, SharedConnection]] = {}
    _opening: ClassVar[dict[str, asyncio.Future[NATS]]] = {}   # a first connect in progress, by url

    def __init__(self, url: str, nc: NATS) -> None:
        self._url = url
        self._nc = nc
        self._users = 0

    @classmethod
    async def acquire(cls, url: str) -> NATS:
        shared = cls._by_url.get(url)
        if shared is None or shared._nc.is_closed:
            # Services that start at the same moment wait for one connect instead of each opening one.
            opening = cls._opening.get(url)
            if opening is None or opening.done() or opening.get_loop() is not asyncio.get_running_loop():
                opening = asyncio.ensure_future(_connect(url, "mnemo-services"))
                cls._opening[url] = opening
            try:
                nc = await asyncio.shield(opening)
            finally:
                if opening.done() and cls._opening.get(url) is opening:
                    del cls._opening[url]
            shared = cls._by_url.get(url)
            if shared is None or shared._nc is not nc:
                shared = cls(url, nc)
                cls._by_url[url] = shared
        shared._users += 1
        return shared  # type: ignore[return-value]  # duck-typed: the connection's attributes

    def __getattr__(self, name: str) -> object:
        return getattr(self._nc, name)

    async def drain(self) -> None:
        await self._release(self._nc.drain)

    async def close(self) -> None:
        await self._release(self._nc.close)

    async def _release(self, end: object) -> None:
        self._users -= 1
        if self._users == 0:
            if self._by_url.get(self._url) is self:
                del self._by_url[self._url]
            await end()  # type: ignore[operator]


async def first_sequence(js: JetStreamContext, stream: str, subject: str, timeout: float = 5.0) -> int | None:
    """Stream sequence of the oldest message on `subject` in `stream` (None when there is none).

    `js.get_msg(..., next=True)` with only the sequence read: the message itself is not decoded (its
    headers go through the email parser, a tenth of a millisecond on every turn's order check)."""
    request = json.dumps({"seq": 1, "next_by_subj": subject}).encode()
    try:  # nats-py's own API call (its errors, as get_msg raises them), without decoding the message
        answer = await js._api_request(f"{js._prefix}.STREAM.MSG.GET.{stream}", request, timeout=timeout)
    except NotFoundError:
        return None
    return int(answer["message"]["seq"])


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError:
        # Exists with another configuration: bring it to ours.
        await js.update_stream(config)


async def ensure_kv(js: JetStreamContext, config: KeyValueConfig) -> KeyValue:
    """The bucket, created if missing; one that keeps fewer records per key than `config` asks (made
    by an earlier release) is brought to that history (agent states' step records need it)."""
    try:
        kv = await js.key_value(config.bucket)
    except Exception:
        return await js.create_key_value(config)
    status = await kv.status()
    if status.history < config.history:
        stream = replace(status.stream_info.config, max_msgs_per_subject=config.history)
        await js.update_stream(stream)
        kv = await js.key_value(config.bucket)
    return kv


def leader_view(js: JetStreamContext, bucket: str) -> KeyValue:
    """The bucket with every get answered by its stream's leader (STREAM.MSG.GET). KV buckets allow
    direct gets, which any replica answers: on a cluster one that lags behind may not have the
    newest revisions yet."""
    return KeyValue(name=bucket, stream=f"KV_{bucket}", pre=f"$KV.{bucket}.", js=js, direct=False)


async def live_entries(kv: KeyValue, keys: str, *, meta_only: bool = False) -> AsyncIterator[KvEntry]:
    """The current (not deleted) entries of `kv` whose keys match the filter `keys`, then stop.

    A watcher delivers the existing values followed by a None marker; an empty match raises
    NoKeysError in nats-py, which here is simply no entries. nats-py can put the marker first when the
    values are already on their way to the client but not yet read (it counts what it has read, not
    what the server sent), which would list nothing: a marker is believed only once as many entries
    were read as the server says it delivered to the watcher's consumer.
    """
    try:
        watcher = await kv.watch(keys, meta_only=meta_only)
    except NoKeysError:
        return
    read = 0
    expected: int | None = None   # the server's count, once a marker came
    try:
        async for entry in watcher:
            if entry is None:
                info = await watcher._sub.consumer_info()  # nats-py exposes no public handle
                expected = info.delivered.consumer_seq + info.num_pending
            else:
                read += 1
                if entry.operation is None and (meta_only or entry.value):
                    yield entry
            if expected is not None and read >= expected:
                break
    except NoKeysError:
        pass
    finally:
        await watcher.stop()


async def ensure_jetstream(js: JetStreamContext, replicas: int | None = None) -> dict[str, KeyValue]:
    """Create every stream and KV bucket if missing; return the buckets by name.

    `replicas` (Settings.jetstream_replicas) is the JetStream replication factor: 3 on a 3-node
    cluster so that losing one server loses nothing; existing streams are brought to it. Without it
    (a restore after a NATS restart) only what is missing is created, with one replica, and what
    exists is left as it is.
    """
    for cfg in STREAMS:
        if replicas is None:
            with contextlib.suppress(BadRequestError):   # exists: keep its configuration
                await js.add_stream(cfg)
        else:
            await ensure_stream(js, replace(cfg, num_replicas=replicas))
    buckets: dict[str, KeyValue] = {}
    for kv_cfg in KV_BUCKETS:
        buckets[kv_cfg.bucket] = await ensure_kv(js, replicated_kv(kv_cfg, replicas))
    return buckets


def replicated_kv(config: KeyValueConfig, replicas: int | None) -> KeyValueConfig:
    """`config` with `replicas` (None: 1). Every bucket of Mnemo, wherever created, goes through here
    so that none is left with one replica on a cluster."""
    n = replicas or 1
    # Direct gets (no JSON API round trip, no base64) on one server only: on a cluster a
    # follower could answer a direct get with a value older than the last acknowledged write.
    return replace(config, replicas=n, direct=n == 1)


def replicated_stream(config: StreamConfig, replicas: int | None) -> StreamConfig:
    """`config` with `replicas` (None: 1), for a stream created outside `ensure_jetstream`."""
    return replace(config, num_replicas=replicas or 1)


__all__ = [
    "KV_BUCKETS",
    "STREAMS",
    "NotFoundError",
    "connect",
    "ensure_jetstream",
    "ensure_kv",
    "ensure_stream",
    "replicated_kv",
    "replicated_stream",
]
