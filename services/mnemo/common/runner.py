"""Run one service as a process: logging, telemetry, metrics, and a clean stop on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable
from typing import Protocol

from mnemo.common.config import Settings, get_settings
from mnemo.common.logs import setup_logging
from mnemo.common.metrics import observe_service_queues, setup_metrics
from mnemo.common.telemetry import setup_telemetry

log = logging.getLogger(__name__)


class Service(Protocol):
    """What every service exposes, in-process (tests) and as a process (`python -m mnemo.<svc>`)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


def run_service(name: str, factory: Callable[[Settings], Service], metrics_port: int | None = None) -> None:
    """Start the service built by `factory` and run until SIGINT / SIGTERM."""
    settings = get_settings()
    setup_logging(name, settings.log_level, settings.log_format)
    service_name = f"mnemo-{name.replace('_', '-')}"  # mnemo-llm-proxy, as in dashboards and manifests
    setup_telemetry(service_name)
    setup_metrics(service_name, settings.metrics_port if metrics_port is None else metrics_port)

    async def main() -> None:
        service = factory(settings)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await service.start()
        queues = await observe_service_queues(name, settings.nats_servers)
        log.info("%s started", name)
        await stop.wait()
        log.info("%s stopping", name)
        if queues is not None:
            await queues.stop()
        await service.stop()

    try:  # libuv's event loop: cheaper socket I/O for every service (gRPC, NATS, HTTP)
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
