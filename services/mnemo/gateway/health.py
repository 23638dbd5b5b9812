"""Readiness of the stack behind the gateway: gRPC health checks, cached for a short while."""

from __future__ import annotations

import asyncio
import time

from mnemo.common.grpcutil import check_health


class HealthChecker:
    """Checks each internal service (name -> gRPC target); results cached for `ttl` seconds."""

    def __init__(self, targets: dict[str, str], ttl: float = 1.0) -> None:
        self.targets = targets
        self.ttl = ttl
        self._cached: tuple[float, dict[str, bool]] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> dict[str, bool]:
        async with self._lock:
            now = time.monotonic()
            if self._cached is not None and now - self._cached[0] < self.ttl:
                return self._cached[1]
            names = list(self.targets)
            results = await asyncio.gather(*(check_health(self.targets[n], timeout=1.0) for n in names))
            status = dict(zip(names, results, strict=True))
            self._cached = (time.monotonic(), status)
            return status
