"""The commit log: every committed message goes to the MESSAGES stream (recall is indexed from it),
one record per step.

Durability across a crash between the CAS write and the publish: the state keeps the last commit's
messages in `commit_outbox`. Whenever this process reads an agent whose outbox it has not confirmed
as published (a restart, another replica's commit), it re-publishes them with the same Nats-Msg-Id;
the stream drops duplicates inside its window and recall indexing upserts by id after it.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from nats.js.kv import KeyValue

from mnemo.common import subjects, telemetry
from mnemo.common.errors import InvalidArgument
from mnemo.common.natsutil import live_entries
from mnemo.v1 import common_pb2, memory_pb2

log = logging.getLogger(__name__)

BATCH_HEADER = "Mnemo-Batch"
RECORD_MAX_MESSAGES = 32
RECORD_MAX_BYTES = 512 * 1024
HEADERS_ROOM = 4096  # trace context, Nats-Msg-Id and the batch header of a record
_CONFIRMED_MAX = 100_000  # agents whose last outbox this process knows is published


def _records(messages: list[common_pb2.Message], max_bytes: int) -> list[memory_pb2.MessageBatch]:
    """`messages` in order, cut into records of at most RECORD_MAX_MESSAGES and about `max_bytes`."""
    out: list[memory_pb2.MessageBatch] = []
    batch, size = memory_pb2.MessageBatch(), 0
    for msg in messages:
        n = msg.ByteSize() + 8
        if batch.messages and (len(batch.messages) >= RECORD_MAX_MESSAGES or size + n > max_bytes):
            out.append(batch)
            batch, size = memory_pb2.MessageBatch(), 0
        batch.messages.append(msg)
        size += n
    if batch.messages:
        out.append(batch)
    return out


def read_record(data: bytes, headers: dict[str, str] | None) -> list[common_pb2.Message]:
    """The messages of one MESSAGES record (a step's batch, or a single rewritten message)."""
    if headers and headers.get(BATCH_HEADER) == "1":
        return list(memory_pb2.MessageBatch.FromString(data).messages)
    return [common_pb2.Message.FromString(data)]


def log_id(tenant_id: str, agent_id: str, message_id: str) -> str:
    """The Nats-Msg-Id of a message: the stream deduplicates stream-wide, message ids are per agent."""
    return f"{tenant_id}.{agent_id}.{message_id}"


class CommitLog:
    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._confirmed: OrderedDict[str, int] = OrderedDict()  # agent key -> revision published
        self._inflight: dict[str, asyncio.Task[None]] = {}      # agent key -> its background publish

    @property
    def max_message_bytes(self) -> int:
        """The largest message the log can hold (one record, headers aside, within NATS's max_payload)."""
        return self.js._nc.max_payload - HEADERS_ROOM

    def check_size(self, message: common_pb2.Message, what: str) -> None:
        """InvalidArgument when `message` could never be published (checked before anything is)."""
        size = message.ByteSize()
        if size > self.max_message_bytes:
            raise InvalidArgument(f"{what} is {size} bytes; a message can be at most {self.max_message_bytes}")

    def publish_soon(self, state: common_pb2.AgentState, messages: list[common_pb2.Message]) -> None:
        """Publish a committed step's messages in the background (the caller's step is already
        durable: its messages are the state's outbox). An agent's publishes run one after another."""
        tenant_id, agent_id = state.config.tenant_id, state.config.id
        key = subjects.agent_key(tenant_id, agent_id)
        previous = self._inflight.get(key)
        revision = state.revision

        async def run() -> None:
            if previous is not None:
                await asyncio.wait([previous])  # not _settled(): that would wait for this task too
            try:
                await self.publish(tenant_id, agent_id, messages)
                self._confirm(key, revision)
            except Exception as exc:
                log.warning("commit log publish for %s deferred to its outbox: %s", key, exc)
            finally:
                if self._inflight.get(key) is task:
                    del self._inflight[key]

        task = asyncio.get_running_loop().create_task(run())
        self._inflight[key] = task

    async def _settled(self, key: str) -> None:
        """Once the agent's background publish (if any) has finished."""
        inflight = self._inflight.get(key)
        if inflight is not None:
            await asyncio.wait([inflight])

    async def drain(self) -> None:
        """Wait for the background publishes (on shutdown)."""
        while self._inflight:
            await asyncio.wait(list(self._inflight.values()))

    async def publish(self, tenant_id: str, agent_id: str, messages: list[common_pb2.Message]) -> None:
        """Append `messages` (a step's, or an import's) to the agent's log subject as MessageBatch
        records, each deduplicated by the id of its last message."""
        subject = subjects.messages_subject(tenant_id, agent_id)
        headers = {**telemetry.inject(), BATCH_HEADER: "1"}
        limit = min(RECORD_MAX_BYTES, self.js._nc.max_payload // 2)
        for batch in _records(messages, limit):
            msg_id = log_id(tenant_id, agent_id, batch.messages[-1].id)
            await self.js.publish(subject, batch.SerializeToString(), headers={**headers, "Nats-Msg-Id": msg_id})

    def confirm(self, state: common_pb2.AgentState) -> None:
        self._confirm(subjects.agent_key(state.config.tenant_id, state.config.id), state.revision)

    def _confirm(self, key: str, revision: int) -> None:
        self._confirmed[key] = max(revision, self._confirmed.get(key, 0))
        self._confirmed.move_to_end(key)
        while len(self._confirmed) > _CONFIRMED_MAX:
            self._confirmed.popitem(last=False)

    async def publish_outbox(self, state: common_pb2.AgentState) -> None:
        """Publish the state's outbox unless this process already confirmed it for this revision."""
        if not state.commit_outbox:
            return
        key = subjects.agent_key(state.config.tenant_id, state.config.id)
        await self._settled(key)
        if self._confirmed.get(key, 0) >= state.revision:
            return
        if not await self.is_published(state):
            await self.publish(state.config.tenant_id, state.config.id, list(state.commit_outbox))
        self.confirm(state)

    async def is_published(self, state: common_pb2.AgentState) -> bool:
        """Whether the outbox's last message is the last one of the agent's log (messages are
        published in order, so then all of them are): saves a duplicate after the dedup window."""
        tenant_id, agent_id = state.config.tenant_id, state.config.id
        try:
            last = await self.js.get_last_msg(subjects.MESSAGES_STREAM, subjects.messages_subject(tenant_id, agent_id))
        except NotFoundError:
            return False
        return (last.headers or {}).get("Nats-Msg-Id") == log_id(tenant_id, agent_id, state.commit_outbox[-1].id)

    async def recover(self, agents: KeyValue) -> int:
        """Start-up pass: publish the pending outbox of every agent in the `agents` bucket, so that
        an agent never touched again after a crash still gets its last messages into recall.
        Returns how many agents' outboxes were checked."""
        checked = 0
        async for entry in live_entries(agents, ">"):  # each has a value and a revision
            try:
                state = common_pb2.AgentState.FromString(entry.value or b"")
            except Exception:
                log.warning("commit-log recovery skips an unreadable state %s", entry.key)
                continue
            if not state.commit_outbox:
                continue
            state.revision = entry.revision or 0
            await self.publish_outbox(state)
            checked += 1
        return checked

    def forget(self, tenant_id: str, agent_id: str) -> None:
        self._confirmed.pop(subjects.agent_key(tenant_id, agent_id), None)

    async def purge_agent(self, tenant_id: str, agent_id: str) -> None:
        """Remove the agent's whole log (DeleteAgent)."""
        await self._settled(subjects.agent_key(tenant_id, agent_id))  # nothing may land after the purge
        self.forget(tenant_id, agent_id)
        await self.js.purge_stream(subjects.MESSAGES_STREAM,
                                   subject=subjects.messages_subject(tenant_id, agent_id))
