"""Agent events from the EVENTS stream: JSON shape, one live hub per process, and replay by sequence."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncGenerator
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError

from mnemo.common import subjects
from mnemo.common.natsutil import quietly
from mnemo.gateway.convert import to_json
from mnemo.v1 import common_pb2

log = logging.getLogger(__name__)

FINAL_TYPES = ("turn_completed", "turn_failed")
# A wait for a turn (POST /messages, its SSE and gRPC streams, tool results) ends at these too: the
# turn is paused on calls the caller must answer (tool_call_requested / approval_requested came first).
PAUSE_TYPES = ("turn_paused",)
EVENTS_WILDCARD = "mnemo.events.>"


def parse_event(data: bytes, seq: int) -> common_pb2.Event | None:
    """The Event in a stream message (protobuf), with `seq` set from the stream sequence."""
    event = common_pb2.Event()
    try:
        event.ParseFromString(data)
    except Exception:
        log.warning("skipping an undecodable event at seq %s", seq)
        return None
    event.seq = seq
    return event


def is_final(event: common_pb2.Event) -> bool:
    return event.type in FINAL_TYPES


def ends_wait(event: common_pb2.Event) -> bool:
    """The turn ended, or paused: what a caller waiting for it gets back control at."""
    return event.type in FINAL_TYPES or event.type in PAUSE_TYPES


def event_json(event: common_pb2.Event) -> dict[str, Any]:
    """{"type", "seq", "turn_id", "agent_id", "step", "created_at", ...payload fields flattened}."""
    out: dict[str, Any] = {"type": event.type, "seq": event.seq, "turn_id": event.turn_id,
                           "agent_id": event.agent_id, "step": event.step, "created_at": event.created_at}
    which = event.WhichOneof("payload")
    if which:
        for key, value in to_json(getattr(event, which)).items():
            out.setdefault(key, value)
    return out


def usage_of(events: list[common_pb2.Event]) -> dict[str, Any]:
    """The turn's usage: from turn_completed when it has one, else the sum of usage events."""
    for event in events:
        if event.type == "turn_completed" and event.turn_completed.HasField("usage"):
            u = event.turn_completed.usage
            if u.total_tokens or u.prompt_tokens:
                return _usage_dict(u.prompt_tokens, u.completion_tokens, u.total_tokens, u.model)
    prompt = completion = total = 0
    model = ""
    for event in events:
        if event.type == "usage":
            prompt += event.usage.prompt_tokens
            completion += event.usage.completion_tokens
            total += event.usage.total_tokens
            model = event.usage.model or model
    return _usage_dict(prompt, completion, total or prompt + completion, model)


def _usage_dict(prompt: int, completion: int, total: int, model: str) -> dict[str, Any]:
    out: dict[str, Any] = {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": total}
    if model:
        out["model"] = model
    return out


def stop_reason_of(events: list[common_pb2.Event]) -> str:
    """end_turn, max_steps, ... or "error"; "paused" for a turn that waits on calls; "" still running."""
    paused = False
    for event in events:
        if event.type == "turn_completed":
            return event.turn_completed.stop_reason or "end_turn"
        if event.type == "turn_failed":
            return "error"
        paused = paused or event.type in PAUSE_TYPES
    return "paused" if paused else ""


class TurnWaiter:
    """Events of one turn as they arrive, deduplicated by sequence number."""

    def __init__(self, turn_id: str) -> None:
        self.turn_id = turn_id
        self.queue: asyncio.Queue[common_pb2.Event] = asyncio.Queue()
        self._seen: set[int] = set()

    def put(self, event: common_pb2.Event) -> None:
        if event.seq in self._seen:
            return
        self._seen.add(event.seq)
        self.queue.put_nowait(event)

    def merge(self, history: list[common_pb2.Event]) -> None:
        """Add past events and re-queue everything not yet taken in sequence order (no await here,
        so no live event can slip in between)."""
        pending: list[common_pb2.Event] = []
        while not self.queue.empty():
            pending.append(self.queue.get_nowait())
        by_seq = {e.seq: e for e in [*history, *pending]}
        self._seen.update(by_seq)
        for seq in sorted(by_seq):
            self.queue.put_nowait(by_seq[seq])


class EventHub:
    """One ordered push consumer on every agent's events (deliver new), dispatching by turn id.

    Requests register a waiter before publishing their turn, so no event of it can be missed; no
    consumer is created per request on the hot path.
    """

    def __init__(self, js: JetStreamContext) -> None:
        self.js = js
        self._waiters: dict[str, list[TurnWaiter]] = {}
        self._sub: Any = None

    async def start(self) -> None:
        self._sub = await self.js.subscribe(EVENTS_WILDCARD, stream=subjects.EVENTS_STREAM, cb=self._on_msg,
                                            ordered_consumer=True, deliver_policy=DeliverPolicy.NEW,
                                            idle_heartbeat=2.0)

    async def stop(self) -> None:
        if self._sub is not None:
            try:
                await self._sub.unsubscribe()
            except Exception:
                pass
            self._sub = None

    @property
    def running(self) -> bool:
        return self._sub is not None

    async def _on_msg(self, msg: Any) -> None:
        event = parse_event(msg.data, msg.metadata.sequence.stream)
        if event is None:
            return
        for waiter in self._waiters.get(event.turn_id, ()):
            waiter.put(event)

    def register(self, turn_id: str) -> TurnWaiter:
        waiter = TurnWaiter(turn_id)
        self._waiters.setdefault(turn_id, []).append(waiter)
        return waiter

    def unregister(self, waiter: TurnWaiter) -> None:
        waiters = self._waiters.get(waiter.turn_id)
        if waiters and waiter in waiters:
            waiters.remove(waiter)
            if not waiters:
                self._waiters.pop(waiter.turn_id, None)


async def replay(js: JetStreamContext, tenant_id: str, agent_id: str, *, after: int = 0,
                 since: datetime | None = None, follow: bool = False,
                 idle_timeout: float | None = None) -> AsyncGenerator[common_pb2.Event | None, None]:
    """The agent's events after sequence `after` (or since a time), from an ephemeral ordered consumer.

    Without `follow` the iteration ends once the consumer has caught up with the stream (or after
    `idle_timeout` seconds without a message); with `follow` it yields None after each idle period
    (a chance for keep-alives) and runs until the caller stops.
    """
    subject = subjects.events_subject(tenant_id, agent_id)
    if not follow:
        try:
            last = await js.get_last_msg(subjects.EVENTS_STREAM, subject)
        except NotFoundError:
            return
        if last.seq is None or last.seq <= after:
            return
    if since is not None:
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_TIME,
                                opt_start_time=since.astimezone(UTC))
    else:
        config = ConsumerConfig(deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1)
    sub = await js.subscribe(subject, stream=subjects.EVENTS_STREAM, ordered_consumer=True, config=config,
                             idle_heartbeat=2.0, inactive_threshold=30.0)
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=idle_timeout or 3600.0)
            except TimeoutError:
                if follow:
                    yield None
                    continue
                return
            seq = msg.metadata.sequence.stream
            event = parse_event(msg.data, seq)
            if event is not None and seq > after:
                yield event
            if not follow and msg.metadata.num_pending == 0:
                return
    finally:
        await quietly(sub.unsubscribe())


async def events_of_turn(events: AsyncGenerator[common_pb2.Event | None, None],
                         turn_id: str = "") -> AsyncGenerator[common_pb2.Event | None, None]:
    """Only `turn_id`'s events, up to its final one (every event when `turn_id` is empty); the
    Nones of a followed replay (idle periods) pass through. Closes `events` when done."""
    try:
        async for event in events:
            if event is not None and turn_id:
                if event.turn_id != turn_id:
                    continue
                yield event
                if is_final(event):
                    return
            else:
                yield event
    finally:
        await events.aclose()


def recent_window_start(seconds: float) -> datetime:
    return datetime.now(UTC) - timedelta(seconds=seconds)


def sse_frame(event: common_pb2.Event) -> str:
    return f"id: {event.seq}\nevent: {event.type}\ndata: {json.dumps(event_json(event))}\n\n"
