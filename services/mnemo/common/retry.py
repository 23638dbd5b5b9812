"""Backoff, written once: exponential delays with jitter, on tenacity.

`Backoff` is the one policy object. Use `Backoff.delay(n)` where something else does the waiting
(a JetStream nak delay), `Backoff.retrying()` for a block of calls retried on failure, and
`retry_forever` for a start-up task that must eventually succeed (connect, recover).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt, stop_never

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Backoff:
    """`base · 2^(n-1)` seconds before attempt n+1, capped at `cap`; with `jitter`, a uniform draw
    in [delay/2, delay] so that replicas that failed together do not retry together. A failure's
    `retry_after` hint (seconds), when longer, wins."""

    base: float = 0.25
    cap: float = 8.0
    jitter: bool = True
    attempts: int | None = None   # total attempts for `retrying()`; None = until it succeeds

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `failures`-th consecutive failure (1, 2, ...)."""
        d = min(self.cap, self.base * 2 ** max(0, min(failures, 60) - 1))
        if self.jitter:
            d = random.uniform(d / 2, d)
        return max(d, retry_after) if retry_after else d

    def wait(self, state: RetryCallState) -> float:
        """tenacity `wait=` callback."""
        exc = state.outcome.exception() if state.outcome else None
        return self.delay(state.attempt_number, getattr(exc, "retry_after", None))

    def retrying(self, retry_if: Callable[[BaseException], bool]) -> AsyncRetrying:
        """`async for attempt in policy.retrying(pred): with attempt: ...` (re-raises the last error)."""
        stop = stop_never if self.attempts is None else stop_after_attempt(self.attempts)
        return AsyncRetrying(stop=stop, retry=retry_if_exception(retry_if), wait=self.wait, reraise=True)


async def retry_forever(call: Callable[[], Awaitable[T]], policy: Backoff, what: str,
                        log: logging.Logger) -> T:
    """Run `call` until it succeeds, logging each failure (cancellation stops it)."""
    failures = 0
    while True:
        try:
            return await call()
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            failures += 1
            delay = policy.delay(failures)
            log.warning("%s failed, retrying in %.1fs: %s", what, delay, exc)
            await asyncio.sleep(delay)
