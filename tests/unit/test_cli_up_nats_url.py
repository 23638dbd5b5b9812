"""`mnemo up` with MNEMO_NATS_URL naming one server or a cluster (a comma-separated list)."""

from __future__ import annotations

import asyncio

from mnemo.cli.up import any_nats_reachable, nats_addresses


def test_a_url_list_names_every_server() -> None:
    # Regression: the list was parsed as one URL (urlparse), so `mnemo up` refused a cluster.
    url = "nats://127.0.0.1:4222, nats://10.0.0.2:4223,127.0.0.3:4224,nats://host"
    assert nats_addresses(url) == [("127.0.0.1", 4222), ("10.0.0.2", 4223), ("127.0.0.3", 4224), ("host", 4222)]


async def test_one_reachable_server_of_the_list_is_enough() -> None:
    server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with server:
        dead = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0)
        dead_port = dead.sockets[0].getsockname()[1]
        dead.close()
        await dead.wait_closed()
        assert await any_nats_reachable(f"nats://127.0.0.1:{dead_port},nats://127.0.0.1:{port}")
        assert not await any_nats_reachable(f"nats://127.0.0.1:{dead_port}")


def test_each_process_gets_its_own_metrics_port(tmp_path: object) -> None:
    # Regression: with MNEMO_METRICS_PORT every process of `mnemo up --orchestrators N` bound the same
    # port, so every replica but the first died at start.
    from pathlib import Path

    from mnemo.cli.up import metrics_ports
    from mnemo.common.config import Settings

    home = Path(str(tmp_path))
    three = Settings(metrics_port=9500, orchestrators=3, layout="combined")
    assert metrics_ports(three, home) == {"services": 9500, "orchestrator-1": 9501, "orchestrator-2": 9502,
                                          "orchestrator-3": 9503}
    split = Settings(metrics_port=9500, layout="split")
    assert sorted(metrics_ports(split, home).values()) == [9500, 9501, 9502, 9503]
    auto = Settings(metrics_port=9500, orchestrators=2)   # split: one port per process all the same
    assert sorted(metrics_ports(auto, home).values()) == [9500, 9501, 9502, 9503, 9504]
    assert metrics_ports(Settings(orchestrators=3), home) == {}
