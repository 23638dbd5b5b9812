"""The services of one process (the combined layout) share one NATS connection: one socket, and each
service letting go of it leaves it open for the others until the last one."""

from __future__ import annotations

from mnemo.common.natsutil import connect


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
