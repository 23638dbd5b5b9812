"""Resilience of provider calls: retries (the shared backoff policy, honouring Retry-After), a
circuit breaker per provider, and per-tenant token buckets."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from mnemo.common.retry import Backoff
from mnemo.llm_proxy.errors import CircuitOpen, LLMError, ProviderError, ProviderUnavailable, RateLimited, Timeout

T = TypeVar("T")


def is_retryable(exc: BaseException) -> bool:
    """429, 408, 409, 5xx and connection failures are retried; other 4xx and timeouts are not."""
    return isinstance(exc, LLMError) and exc.retryable


class CircuitBreaker:
    """Opens after `failures` consecutive provider failures; after `reset` seconds one trial call
    is let through (half-open): success closes it, failure opens it again."""

    def __init__(self, name: str, failures: int = 5, reset: float = 30.0) -> None:
        self.name, self.threshold, self.reset = name, max(1, failures), reset
        self.consecutive = 0
        self.opened_at: float | None = None
        self._trial_running = False

    @property
    def state(self) -> str:
        if self.opened_at is None:
            return "closed"
        return "half_open" if time.monotonic() - self.opened_at >= self.reset else "open"

    def before_call(self) -> None:
        state = self.state
        if state == "open":
            wait = self.reset - (time.monotonic() - (self.opened_at or 0))
            raise CircuitOpen(f"provider {self.name!r} is unavailable: circuit open after "
                              f"{self.consecutive} consecutive failures; retry in {wait:.1f}s",
                              retry_after=max(0.0, wait))
        if state == "half_open":
            if self._trial_running:
                raise CircuitOpen(f"provider {self.name!r} is unavailable: circuit half-open, trial call running",
                                  retry_after=1.0)
            self._trial_running = True

    def success(self) -> None:
        self.consecutive = 0
        self.opened_at = None
        self._trial_running = False

    def failure(self) -> None:
        self.consecutive += 1
        self._trial_running = False
        if self.opened_at is not None or self.consecutive >= self.threshold:
            self.opened_at = time.monotonic()

    def neutral(self) -> None:
        """A call that says nothing about the provider's health (a 4xx)."""
        self._trial_running = False


def counts_against_provider(exc: BaseException) -> bool:
    return isinstance(exc, (ProviderError, Timeout)) or (
        isinstance(exc, ProviderUnavailable) and not isinstance(exc, CircuitOpen))


@dataclass
class RetryPolicy:
    """Up to `max_retries` more attempts of a failed provider call, spaced by the one backoff policy
    (`mnemo.common.retry.Backoff`, jittered, from `base_delay` up to `max_delay`); a failure asking to
    wait longer than `max_retry_after` goes back to the caller instead."""

    max_retries: int = 2
    base_delay: float = 0.25
    max_delay: float = 8.0
    max_retry_after: float = 30.0
    backoff: Backoff = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.backoff = Backoff(self.base_delay, self.max_delay, jitter=True, attempts=self.max_retries + 1)

    def allows(self, exc: BaseException) -> bool:
        """Whether the attempt that raised `exc` is worth another."""
        if not is_retryable(exc):
            return False
        after = getattr(exc, "retry_after", None)
        return after is None or after <= self.max_retry_after


async def call_with_resilience(call: Callable[[], Awaitable[T]], breaker: CircuitBreaker,
                               policy: RetryPolicy) -> T:
    """Run `call` through the breaker with retries; raise the last LLMError when it gives up.

    The attempts are a plain loop on `policy.backoff` (what `Backoff.retrying()` does, without its
    per-call setup: every chat call comes through here, and nearly all succeed at once)."""
    attempts = policy.backoff.attempts
    attempt = 1
    while True:
        try:
            breaker.before_call()
            try:
                result = await call()
            except BaseException as exc:
                if counts_against_provider(exc):
                    breaker.failure()
                else:
                    breaker.neutral()
                raise
        except BaseException as exc:
            if (attempts is not None and attempt >= attempts) or not policy.allows(exc):
                raise
            await asyncio.sleep(policy.backoff.delay(attempt, getattr(exc, "retry_after", None)))
            attempt += 1
            continue
        breaker.success()
        return result


class TokenBucket:
    """`rate_per_minute` tokens per minute with a burst of one minute's worth."""

    def __init__(self, rate_per_minute: int) -> None:
        self.capacity = float(rate_per_minute)
        self.rate = rate_per_minute / 60.0
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def _refill(self) -> None:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now

    def take(self, amount: int) -> None:
        """Spend `amount` tokens or raise RateLimited with the wait until they are available."""
        self._refill()
        need = min(float(amount), self.capacity)
        if self.tokens >= need:
            self.tokens -= amount
            return
        retry_after = (need - self.tokens) / self.rate
        raise RateLimited(f"tenant token rate limit ({int(self.capacity)} tokens/min) exceeded; "
                          f"retry after {retry_after:.1f}s", retry_after=retry_after)

    def adjust(self, delta: int) -> None:
        """Correct a reservation by the actual usage (positive = more spent)."""
        self._refill()
        self.tokens -= delta


class TenantLimiter:
    """One token bucket per tenant (a rate of 0 means unlimited)."""

    def __init__(self, default_per_minute: int, overrides: dict[str, int] | None = None) -> None:
        self.default = default_per_minute
        self.overrides = overrides or {}
        self.buckets: dict[str, TokenBucket] = {}

    def bucket(self, tenant: str) -> TokenBucket | None:
        rate = self.overrides.get(tenant, self.default)
        if rate <= 0:
            return None
        b = self.buckets.get(tenant)
        if b is None:
            b = self.buckets[tenant] = TokenBucket(rate)
        return b
