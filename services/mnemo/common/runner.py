"""Run services as a process: logging, telemetry, metrics, and a clean stop on SIGINT/SIGTERM.

`run_service` runs one service (`python -m mnemo.<service>`); `run_services` runs several in one
process (the combined layout of `mnemo up`), started wave by wave and stopped in reverse.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from typing import Protocol

from mnemo.common.config import Settings, get_settings
from mnemo.common.logs import setup_logging
from mnemo.common.metrics import QueueObservers, observe_service_queues, setup_metrics
from mnemo.common.telemetry import setup_telemetry

log = logging.getLogger(__name__)


class Service(Protocol):
    """What every service exposes, in-process (tests) and as a process (`python -m mnemo.<svc>`)."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...


Factory = Callable[[Settings], Service]


def settle_heap(gen0_threshold: int) -> None:
    """Once the services are up: what start-up built (modules, schemas, clients) lives as long as the
    process, so it leaves the collector's generations (`gc.freeze`): a full collection walked all of
    it (~250,000 objects, a 150 ms pause of the event loop, twice in 50 agents x 10 turns at once)
    and freed none of it. Young collections run every `gen0_threshold` allocations (Python's 700
    made ~240 of them in those 500 turns, 100 ms in all; 10,000: a handful, ~20 ms)."""
    gc.collect()
    gc.freeze()
    if gen0_threshold > 0:
        gc.set_threshold(gen0_threshold, *gc.get_threshold()[1:])


def run_service(name: str, factory: Factory, metrics_port: int | None = None) -> None:
    """Start the service built by `factory` and run until SIGINT / SIGTERM."""
    run_services(name, [[(name, factory)]], metrics_port=metrics_port)


def run_services(process_name: str, waves: Sequence[Sequence[tuple[str, Factory]]],
                 settings: Settings | None = None, metrics_port: int | None = None) -> None:
    """Start the services of each wave together, wave after wave; run until SIGINT / SIGTERM; stop
    them in reverse order."""
    settings = settings or get_settings()
    setup_logging(process_name, settings.log_level, settings.log_format)
    service_name = f"mnemo-{process_name.replace('_', '-')}"  # mnemo-llm-proxy, as in dashboards and manifests
    setup_telemetry(service_name)
    setup_metrics(service_name, settings.metrics_port if metrics_port is None else metrics_port)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        started: list[list[Service]] = []
        queues: list[QueueObservers] = []
        for wave in waves:
            services = [factory(settings) for _, factory in wave]
            results = await asyncio.gather(*(s.start() for s in services), return_exceptions=True)
            started.append(services)
            failed = [(name, r) for (name, _), r in zip(wave, results, strict=True) if isinstance(r, BaseException)]
            if failed:
                for name, exc in failed:
                    log.error("%s failed to start: %s", name, exc, exc_info=exc)
                await _stop_all(started)
                raise SystemExit(1)
            for name, _ in wave:
                observer = await observe_service_queues(name, settings.nats_servers)
                if observer is not None:
                    queues.append(observer)
                log.info("%s started", name)
        settle_heap(settings.gc_gen0_threshold)
        await stop.wait()
        log.info("%s stopping", process_name)
        for observer in queues:
            await observer.stop()
        await _stop_all(started)

    async def _stop_all(started: list[list[Service]]) -> None:
        for services in reversed(started):
            for result in await asyncio.gather(*(s.stop() for s in services), return_exceptions=True):
                if isinstance(result, Exception):
                    log.warning("stopping a service failed: %s", result)

    try:  # libuv's event loop: cheaper socket I/O for every service (gRPC, NATS, HTTP)
        import uvloop
    except ImportError:
        asyncio.run(main())
    else:
        uvloop.run(main())
