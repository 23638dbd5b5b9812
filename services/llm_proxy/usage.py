"""Usage metering: one JSON record per model call on `mnemo.usage.<tenant>.<agent>` (stream USAGE),
and totals per tenant / agent / model aggregated from a consumer of that stream (so they survive
restarts of the proxy). Best effort: without NATS, calls are still served and the loss is logged."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from mnemo.common import ids, subjects
from mnemo.common.natsutil import ensure_stream, STREAMS

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


class UsageMeter:
    """Publishes usage records and keeps running totals from the USAGE stream."""

    def __init__(self, nats_url: str | None, connect_timeout: float = 2.0) -> None:
        self.nats_url = nats_url
        self.connect_timeout = connect_timeout
        self.nc: Any = None
        self.js: Any = None
        self.sub: Any = None
        self.totals: dict[tuple[str, str, str], Totals] = defaultdict(Totals)
        self._pending: set[asyncio.Task[None]] = set()
        self._connect_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect in the background: the proxy serves chats whether NATS is up or not."""
        if self.nats_url:
            self._connect_task = asyncio.get_running_loop().create_task(self._connect())

    async def _connect(self) -> None:
        import nats

        delay = 0.5
        while True:
            try:
                self.nc = await nats.connect(servers=self.nats_url.split(","), name="llm-proxy-usage",
                                             connect_timeout=self.connect_timeout, max_reconnect_attempts=-1,
                                             reconnect_time_wait=0.5, allow_reconnect=True,
                                             error_cb=self._on_nats_error)
                break
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - unreachable: retry, keep serving
                log.warning("usage metering: NATS unreachable (%s); retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.js = self.nc.jetstream()
        usage_cfg = next(s for s in STREAMS if s.name == subjects.USAGE_STREAM)
        try:
            await ensure_stream(self.js, usage_cfg)
        except Exception as exc:  # noqa: BLE001
            log.warning("usage metering: cannot ensure stream %s: %s", subjects.USAGE_STREAM, exc)
        from nats.js.api import DeliverPolicy

        self.sub = await self.js.subscribe("mnemo.usage.>", cb=self._on_record, ordered_consumer=True,
                                           deliver_policy=DeliverPolicy.ALL, stream=subjects.USAGE_STREAM)

    async def _on_nats_error(self, exc: Exception) -> None:
        log.debug("usage metering: NATS error: %s", exc)

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def _on_record(self, msg: Any) -> None:
        try:
            rec = json.loads(msg.data)
            t = self.totals[(rec.get("tenant", ""), rec.get("agent", ""), rec.get("model", ""))]
            t.prompt_tokens += int(rec.get("prompt_tokens", 0))
            t.completion_tokens += int(rec.get("completion_tokens", 0))
            t.calls += 1
        except (ValueError, TypeError) as exc:
            log.warning("usage metering: bad record skipped: %s", exc)

    def record(self, rec: UsageRecord) -> None:
        """Publish without making the caller wait (JetStream ack awaited in the background)."""
        rec.ts = rec.ts or ids.now_iso()
        if self.js is None:
            log.warning("usage metering: NATS not connected; record lost: tenant=%s model=%s tokens=%d/%d",
                        rec.tenant, rec.model, rec.prompt_tokens, rec.completion_tokens)
            return
        task = asyncio.get_running_loop().create_task(self._publish(rec))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _publish(self, rec: UsageRecord) -> None:
        from mnemo.common import telemetry

        try:
            await self.js.publish(subjects.usage_subject(rec.tenant or "_", rec.agent),
                                  json.dumps(asdict(rec)).encode(), headers=telemetry.inject() or None,
                                  timeout=5)
        except Exception as exc:  # noqa: BLE001 - metering must never fail a call
            log.warning("usage metering: publish failed (%s); record lost: tenant=%s model=%s",
                        exc, rec.tenant, rec.model)

    def query(self, tenant: str, agent: str = "") -> list[tuple[str, str, str, Totals]]:
        return [(t, a, m, v) for (t, a, m), v in sorted(self.totals.items())
                if t == tenant and (not agent or a == agent)]

    async def stop(self) -> None:
        if self._connect_task is not None:
            self._connect_task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connect_task
        if self._pending:
            await asyncio.wait(list(self._pending), timeout=5)
        if self.sub is not None:
            with contextlib.suppress(Exception):
                await self.sub.unsubscribe()
        if self.nc is not None:
            with contextlib.suppress(Exception):
                await self.nc.drain()
