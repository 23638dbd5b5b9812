"""Per-tenant token buckets (in process; each gateway replica limits on its own).

Each tenant's bucket has the tenant's own limits (`TenantLimits`): set per tenant through the admin
API, else the gateway's defaults (`MNEMO_GATEWAY_RATE_PER_SECOND`, `MNEMO_GATEWAY_RATE_BURST`), except
the local tenant of an embedded stack, which nobody else shares: it is not limited unless told.
A rate of 0 means no limit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from mnemo.gateway.errors import retry_after_header


@dataclass(frozen=True)
class TenantLimits:
    """Requests per second (0: unlimited) and the burst a tenant may send at once."""

    rate_per_second: float
    burst: int

    @property
    def unlimited(self) -> bool:
        return self.rate_per_second <= 0


UNLIMITED = TenantLimits(0.0, 1)


class RateLimiter:
    """Token buckets by key, each refilled at its limits' rate up to its burst."""

    def __init__(self) -> None:
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, key: str, limits: TenantLimits, cost: float = 1.0) -> float:
        """0 when allowed; otherwise the seconds to wait before a retry can succeed."""
        if limits.unlimited:
            return 0.0
        rate, burst = limits.rate_per_second, float(max(1, limits.burst))
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (burst, now))
        tokens = min(burst, tokens + (now - last) * rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (cost - tokens) / rate

    @staticmethod
    def retry_after_header(wait: float) -> str:
        return retry_after_header(wait)
