"""The services of one process (the combined layout) share one NATS connection: one socket, and each
service letting go of it leaves it open for the others until the last one."""

from __future__ import annotations

from mnemo.common.natsutil import connect
from tests.helpers import eventually


async def test_services_of_one_process_share_a_connection_until_the_last_lets_go(nats_url: str) -> None:
    memory = await connect(nats_url, "mnemo-memory", shared=True)
    gateway = await connect(nats_url, "mnemo-gateway", shared=True)
    alone = await connect(nats_url, "mnemo-orchestrator")  # not shared: its own connection
    try:
        assert memory._nc is gateway._nc and alone is not memory._nc  # type: ignore[attr-defined]
        got = []

        async def on_msg(msg) -> None:  # type: ignore[no-untyped-def]
            got.append(msg.data)

        sub = await gateway.subscribe("shared.test", cb=on_msg)
        await memory.publish("shared.test", b"one")
        await memory.flush()
        await memory.drain()  # the memory service stops: the gateway keeps the connection
        assert gateway.is_connected and not gateway.is_closed
        reply = await gateway.request("$JS.API.INFO", b"", timeout=5)
        assert b"memory" in reply.data
        await sub.unsubscribe()
        assert got == [b"one"]
        await gateway.drain()  # the last one closes it
        assert gateway.is_closed
        again = await connect(nats_url, "mnemo-memory", shared=True)  # a new one after that
        assert again.is_connected and again._nc is not gateway._nc  # type: ignore[attr-defined]
        await again.close()
    finally:
        await alone.close()


async def test_services_starting_at_once_open_one_connection(nats_url: str) -> None:
    """Regression: two services asking at the same moment each opened a connection, and the first
    one's was then never closed (it was no longer the one registered)."""
    import asyncio

    first, second, third = await asyncio.gather(*(connect(nats_url, name, shared=True)
                                                  for name in ("mnemo-memory", "mnemo-gateway", "mnemo-llm-proxy")))
    try:
        assert first._nc is second._nc is third._nc  # type: ignore[attr-defined]
    finally:
        for c in (first, second, third):
            await c.drain()
    assert first.is_closed


async def test_usage_metering_of_the_combined_layout_uses_the_shared_connection(nats_url: str) -> None:
    from mnemo.llm_proxy.usage import UsageMeter, UsageRecord

    services = await connect(nats_url, "mnemo-memory", shared=True)
    meter = UsageMeter(nats_url, shared=True)
    await meter.start()
    try:
        assert await meter.wait_connected(10)
        assert meter.nc._nc is services._nc  # type: ignore[attr-defined]
        await eventually(lambda: meter.sub is not None, message="totals being rebuilt")
        meter.record(UsageRecord("t-shared", "a1", "gpt-4o-mini", "openai", "chat", 12, 3, 1.0))
        await meter.flush()
        await eventually(lambda: bool(meter.query("t-shared")), message="the record counted")
        totals = meter.query("t-shared")
        assert [(t, a, m, v.prompt_tokens, v.completion_tokens) for t, a, m, v in totals] == \
            [("t-shared", "a1", "gpt-4o-mini", 12, 3)]
    finally:
        await meter.stop()
    assert services.is_connected  # the meter let go of the connection; the other service keeps it
    await services.drain()
    assert services.is_closed

