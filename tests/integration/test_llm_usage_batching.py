"""Usage records are published in batches without waiting for each ack: a burst loses nothing and is
counted once, the records of a short window share one message per agent, messages written one record
at a time (before batching) are still counted, and stop() publishes what is still buffered."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from mnemo.common import subjects, usage_wire
from mnemo.common.ids import new_id
from mnemo.llm_proxy.usage import UsageMeter, UsageRecord
from tests.helpers import eventually


def _rec(tenant: str, agent: str, i: int) -> UsageRecord:
    return UsageRecord(tenant=tenant, agent=agent, model="gpt-4o-mini", provider="scripted", purpose="agent",
                       prompt_tokens=10 + i, completion_tokens=1, latency_ms=0.1)


@contextlib.asynccontextmanager
async def connected_meter(nats_url: str) -> AsyncIterator[UsageMeter]:
    """A started meter, once it has connected and subscribed; stopped on the way out."""
    meter = UsageMeter(nats_url)
    await meter.start()
    try:
        await eventually(lambda: meter.sub is not None, message="usage meter connected")
        yield meter
    finally:
        await meter.stop()


async def test_a_burst_of_records_is_published_exactly_once(nats_url, nc) -> None:
    tenant = new_id("ten").replace("-", "_")
    async with connected_meter(nats_url) as meter:
        for i in range(300):
            meter.record(_rec(tenant, "a1", i))
            if i % 50 == 0:
                await asyncio.sleep(0)   # let the flusher take partial batches too
        await meter.flush()

        def settled() -> bool:
            rows = meter.query(tenant)
            return len(rows) == 1 and rows[0][3].calls == 300
        await eventually(settled, message="300 records counted")
        totals = meter.query(tenant)[0][3]
        assert totals.prompt_tokens == sum(10 + i for i in range(300))

    # The stream holds each record once, in far fewer messages than records.
    messages = await _stream_messages(nc, f"mnemo.usage.{tenant}.>")
    records = [r for m in messages for r in usage_wire.decode(m)]
    assert sorted(r["prompt_tokens"] for r in records) == [10 + i for i in range(300)]
    assert len(messages) < 30


async def _stream_messages(nc, subject: str) -> list[bytes]:  # type: ignore[no-untyped-def]
    """The payloads of the USAGE stream's messages on `subject`, oldest first."""
    js = nc.jetstream()
    info = await js.stream_info(subjects.USAGE_STREAM, subjects_filter=subject)
    stored = sum((info.state.subjects or {}).values())
    sub = await js.subscribe(subject, ordered_consumer=True)
    try:
        return [(await sub.next_msg(timeout=5)).data for _ in range(stored)]
    finally:
        await sub.unsubscribe()


async def test_a_window_of_records_is_one_message_per_agent(nats_url, nc) -> None:
    tenant = new_id("ten").replace("-", "_")
    async with connected_meter(nats_url) as meter:
        for i in range(6):
            meter.record(_rec(tenant, "a1" if i % 2 else "a2", i))
        await meter.flush()
    a1 = await _stream_messages(nc, subjects.usage_subject(tenant, "a1"))
    a2 = await _stream_messages(nc, subjects.usage_subject(tenant, "a2"))
    assert [[r["prompt_tokens"] for r in usage_wire.decode(m)] for m in a1] == [[11, 13, 15]]
    assert [[r["prompt_tokens"] for r in usage_wire.decode(m)] for m in a2] == [[10, 12, 14]]
    assert {r["agent"] for r in usage_wire.decode(a1[0])} == {"a1"}


async def test_records_written_one_per_message_are_still_counted(nats_url, nc) -> None:
    """A stream written before batching holds one JSON object per message: totals read both forms."""
    tenant = new_id("ten").replace("-", "_")
    js = nc.jetstream()
    async with connected_meter(nats_url) as meter:
        old = {"tenant": tenant, "agent": "a3", "model": "gpt-4o-mini", "prompt_tokens": 40, "completion_tokens": 2}
        await js.publish(subjects.usage_subject(tenant, "a3"), json.dumps(old).encode())
        await js.publish(subjects.usage_subject(tenant, "a3"), usage_wire.encode([{**old, "prompt_tokens": 2}]))
        await js.publish(subjects.usage_subject(tenant, "a3"), b"not json")

        def counted() -> bool:
            rows = meter.query(tenant)
            return len(rows) == 1 and rows[0][3].calls == 2
        await eventually(counted, message="both records counted, the bad message skipped")
        assert meter.query(tenant)[0][3].prompt_tokens == 42


async def test_stop_publishes_what_is_buffered(nats_url) -> None:
    tenant = new_id("ten").replace("-", "_")
    async with connected_meter(nats_url) as meter:   # leaving it stops it, records still buffered
        for i in range(20):
            meter.record(_rec(tenant, "a2", i))
    async with connected_meter(nats_url) as again:   # totals rebuilt from the stream
        await eventually(lambda: bool(again.query(tenant)) and again.query(tenant)[0][3].calls == 20,
                         message="20 records in the stream")
