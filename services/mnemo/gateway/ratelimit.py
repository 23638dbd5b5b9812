"""Per-tenant token buckets (in process; each gateway replica limits on its own)."""

from __future__ import annotations

import math
import time


class RateLimiter:
    """`rate` requests per second per key with bursts up to `burst`."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = max(rate, 1e-6)
        self.burst = max(burst, 1)
        self._buckets: dict[str, tuple[float, float]] = {}

    def acquire(self, key: str, cost: float = 1.0) -> float:
        """0 when allowed; otherwise the seconds to wait before a retry can succeed."""
        now = time.monotonic()
        tokens, last = self._buckets.get(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - last) * self.rate)
        if tokens >= cost:
            self._buckets[key] = (tokens - cost, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (cost - tokens) / self.rate

    @staticmethod
    def retry_after_header(wait: float) -> str:
        return str(max(1, math.ceil(wait)))
