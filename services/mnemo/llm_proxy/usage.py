"""Usage metering: one JSON record per model call, published on `mnemo.usage.<tenant>.<agent>`
(stream USAGE) in batches (`common.usage_wire`: the records of up to LINGER seconds, one message per
tenant and agent), and totals per tenant / agent / model aggregated from a consumer of that stream (so
they survive restarts of the proxy). Best effort: without NATS, calls are still served and the loss is
logged; a process killed outright loses the records of its last LINGER seconds."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from mnemo.common import ids, natsutil, subjects, telemetry, usage_wire
from mnemo.common.natsutil import STREAMS, ensure_stream, replicated_stream
from mnemo.common.retry import Backoff, retry_forever

log = logging.getLogger(__name__)


@dataclass
class UsageRecord:
    tenant: str
    agent: str
    model: str
    provider: str
    purpose: str
    prompt_tokens: int
    completion_tokens: int
    latency_ms: float
    ts: str = ""
    kind: str = "chat"   # chat | embed
    turn_id: str = ""


@dataclass
class Totals:
    prompt_tokens: int = 0
    completion_tokens: int = 0
    calls: int = 0


ACK_TIMEOUT = 5.0
# A record waits up to LINGER seconds to share its message with the records after it: one message
# (published, acknowledged, read back by every proxy's totals) per agent and window, instead of
# four NATS messages per model call.
LINGER = 0.25
MAX_RECORDS = 500  # records in one message (~250 bytes each, well under NATS's default 1 MB payload)
CONNECT_BACKOFF = Backoff(base=0.5, cap=10.0)   # NATS unreachable at start-up: retried until it is


def _subject(rec: UsageRecord) -> str:
    return subjects.usage_subject(rec.tenant or "_", rec.agent)


Pending = tuple[UsageRecord, dict[str, str]]  # a record and the trace headers captured with it


def messages_of(batch: list[Pending], max_records: int = MAX_RECORDS) -> list[tuple[str, bytes, dict[str, str]]]:
    """(subject, payload, headers) of the messages carrying `batch`: its records grouped by subject in
    arrival order, at most `max_records` a message, each message with the trace headers of its first
    record and a Nats-Msg-Id of its own (so that the one retry of an unacknowledged message is safe)."""
    groups: dict[str, list[Pending]] = {}
    for pending in batch:
        groups.setdefault(_subject(pending[0]), []).append(pending)
    out = []
    for subject, group in groups.items():
        for i in range(0, len(group), max_records):
            chunk = group[i:i + max_records]
            headers = {**chunk[0][1], "Nats-Msg-Id": ids.new_id("usage")}
            # The records are flat: a shallow dict of each, not dataclasses.asdict's deep copy.
            out.append((subject, usage_wire.encode([dict(vars(rec)) for rec, _ in chunk]), headers))
    return out


class UsageMeter:
    """Publishes usage records and keeps running totals from the USAGE stream."""

    def __init__(self, nats_url: str | None, connect_timeout: float = 2.0,
                 on_connect: Callable[[Any], Awaitable[None]] | None = None, replicas: int = 1,
                 shared: bool = False) -> None:
        self.nats_url = nats_url
        self.shared = shared  # the process's shared connection (combined layout), not one of its own
        self.replicas = replicas  # of the USAGE stream (Settings.jetstream_replicas)
        self.on_connect = on_connect  # also given the connection (the proxy serves calls on it)
        self.connect_timeout = connect_timeout
        self.nc: Any = None
        self.js: Any = None
        self.sub: Any = None
        self.totals: dict[tuple[str, str, str], Totals] = defaultdict(Totals)
        # Records waiting for the flusher: (record, trace headers captured at record time).
        self._buffer: list[Pending] = []
        self._wake = asyncio.Event()
        self._now = asyncio.Event()  # flush(): publish without waiting out the linger
        self._idle = asyncio.Event()
        self._idle.set()
        self._subscribed = asyncio.Event()  # set once totals are being rebuilt from the stream
        self._flusher: asyncio.Task[None] | None = None
        self._connect_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect in the background: the proxy serves chats whether NATS is up or not."""
        if self.nats_url:
            self._connect_task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        import nats

        servers = (self.nats_url or "").split(",")

        async def connect() -> Any:
            if self.shared:
                return await natsutil.connect(self.nats_url or "", "mnemo-llm-proxy", shared=True)
            return await nats.connect(servers=servers, name="mnemo-llm-proxy",
                                      connect_timeout=self.connect_timeout, max_reconnect_attempts=-1,
                                      reconnect_time_wait=0.5, allow_reconnect=True,
                                      error_cb=self._on_nats_error)

        self.nc = await retry_forever(connect, CONNECT_BACKOFF, "usage metering: NATS connect", log)
        self.js = self.nc.jetstream()
        usage_cfg = next(s for s in STREAMS if s.name == subjects.USAGE_STREAM)
        try:
            await ensure_stream(self.js, replicated_stream(usage_cfg, self.replicas))
        except Exception as exc:
            log.warning("usage metering: cannot ensure stream %s: %s", subjects.USAGE_STREAM, exc)
        from nats.js.api import DeliverPolicy

        self.sub = await self.js.subscribe("mnemo.usage.>", cb=self._on_record, ordered_consumer=True,
                                           deliver_policy=DeliverPolicy.ALL, stream=subjects.USAGE_STREAM)
        self._subscribed.set()
        if self.on_connect is not None:
            await self.on_connect(self.nc)

    async def _on_nats_error(self, exc: Exception) -> None:
        log.debug("usage metering: NATS error: %s", exc)

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def wait_connected(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the first connection (a proxy that just started)."""
        if not self.connected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._subscribed.wait(), timeout)
        return self.connected

    async def _on_record(self, msg: Any) -> None:
        try:
            records = usage_wire.decode(msg.data)
        except ValueError as exc:
            log.warning("usage metering: bad message skipped: %s", exc)
            return
        for rec in records:
            try:
                prompt, completion = int(rec.get("prompt_tokens", 0)), int(rec.get("completion_tokens", 0))
            except (ValueError, TypeError) as exc:
                log.warning("usage metering: bad record skipped: %s", exc)
                continue
            t = self.totals[(rec.get("tenant", ""), rec.get("agent", ""), rec.get("model", ""))]
            t.prompt_tokens += prompt
            t.completion_tokens += completion
            t.calls += 1

    def record(self, rec: UsageRecord) -> None:
        """Publish without making the caller wait: a background flusher gathers the records of LINGER
        seconds, publishes one message per tenant and agent without waiting for each ack
        (publish_async), then checks every ack."""
        rec.ts = rec.ts or ids.now_iso()
        if self.js is None:
            log.warning("usage metering: NATS not connected; record lost: tenant=%s model=%s tokens=%d/%d",
                        rec.tenant, rec.model, rec.prompt_tokens, rec.completion_tokens)
            return
        self._buffer.append((rec, telemetry.inject()))
        self._idle.clear()
        self._wake.set()
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.get_running_loop().create_task(self._flush_loop())

    async def _flush_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._now.is_set():  # let the records of the next LINGER seconds join this one
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._now.wait(), LINGER)
            self._now.clear()
            while self._buffer:
                batch, self._buffer = self._buffer, []
                await self._publish_batch(batch)
            self._idle.set()

    async def _publish_batch(self, batch: list[Pending], ack_timeout: float = ACK_TIMEOUT) -> None:
        messages = messages_of(batch)
        sent: list[tuple[str, bytes, dict[str, str], asyncio.Future[Any]]] = []
        failed: list[tuple[str, bytes, dict[str, str]]] = []
        for subject, payload, headers in messages:
            try:
                fut = await self.js.publish_async(subject, payload, wait_stall=ack_timeout, headers=headers)
                sent.append((subject, payload, headers, fut))
            except Exception:
                failed.append((subject, payload, headers))
        if sent:
            await asyncio.wait([f for *_, f in sent], timeout=ack_timeout)
        for subject, payload, headers, fut in sent:
            if not fut.done():
                fut.cancel()   # frees its slot in the client's pending-publish window
                failed.append((subject, payload, headers))
            elif fut.cancelled() or fut.exception() is not None:
                failed.append((subject, payload, headers))
        for subject, payload, headers in failed:   # one blocking retry each, same Nats-Msg-Id
            try:
                await self.js.publish(subject, payload, headers=headers, timeout=ack_timeout)
            except Exception as exc:
                log.warning("usage metering: publish failed (%s); %d records lost on %s",
                            exc, len(usage_wire.decode(payload)), subject)

    async def flush(self, timeout: float = 10.0) -> None:
        """Wait until every record given so far has been published (or given up on), without waiting
        out the linger."""
        if not self._idle.is_set():
            self._now.set()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)

    def query(self, tenant: str, agent: str = "") -> list[tuple[str, str, str, Totals]]:
        return [(t, a, m, v) for (t, a, m), v in sorted(self.totals.items())
                if t == tenant and (not agent or a == agent)]

    async def stop(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connect_task
        await self.flush()
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
