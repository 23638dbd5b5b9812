"""Usage records are published in batches without waiting for each ack: a burst loses nothing and is
counted once, and stop() publishes what is still buffered."""

from __future__ import annotations

import asyncio

from mnemo.common.ids import new_id
from mnemo.llm_proxy.usage import UsageMeter, UsageRecord
from tests.helpers import eventually


def _rec(tenant: str, agent: str, i: int) -> UsageRecord:
    return UsageRecord(tenant=tenant, agent=agent, model="gpt-4o-mini", provider="scripted", purpose="agent",
                       prompt_tokens=10 + i, completion_tokens=1, latency_ms=0.1)


async def test_a_burst_of_records_is_published_exactly_once(nats_url, nc) -> None:
    tenant = new_id("ten").replace("-", "_")
    meter = UsageMeter(nats_url)
    await meter.start()
    try:
        await eventually(lambda: meter.sub is not None, message="usage meter connected")
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
    finally:
        await meter.stop()

    # The stream holds each record once.
    js = nc.jetstream()
    sub = await js.subscribe(f"mnemo.usage.{tenant}.>", ordered_consumer=True)
    got = 0
    try:
        while True:
            await sub.next_msg(timeout=1)
            got += 1
    except Exception:
        pass
    finally:
        await sub.unsubscribe()
    assert got == 300


async def test_stop_publishes_what_is_buffered(nats_url) -> None:
    tenant = new_id("ten").replace("-", "_")
    meter = UsageMeter(nats_url)
    await meter.start()
    await eventually(lambda: meter.sub is not None, message="usage meter connected")
    for i in range(20):
        meter.record(_rec(tenant, "a2", i))
    await meter.stop()

    again = UsageMeter(nats_url)   # totals rebuilt from the stream
    await again.start()
    try:
        await eventually(lambda: bool(again.query(tenant)) and again.query(tenant)[0][3].calls == 20,
                         message="20 records in the stream")
    finally:
        await again.stop()
