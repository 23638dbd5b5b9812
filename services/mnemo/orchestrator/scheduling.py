"""Scheduling rules of the turn consumer, apart from JetStream (docs/architecture.md).

Which turn may run now (per-agent arrival order, the agent's step lease), when a turn handed back
to the work queue comes again (one delivery policy on `mnemo.common.retry.Backoff`), which failures
are worth a retry and when a turn is given up and reported failed. The consumer (consumer.py) does
the JetStream side: pulls, acks, naks and the lease writes (leases.py).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from dataclasses import dataclass, field
from typing import NamedTuple

from mnemo.common.errors import MnemoError
from mnemo.common.retry import Backoff

MAX_DELIVERIES = 20   # then the turn is reported failed and dropped
ORDER_BACKOFF = Backoff(base=0.02, cap=0.64)   # an earlier turn of the agent runs elsewhere
RETRY_BACKOFF = Backoff(base=0.4, cap=10.0)    # a transient failure
PULL_BACKOFF = Backoff(base=0.1, cap=2.0)      # JetStream does not answer pulls
PAUSED_BACKOFF = Backoff(base=0.25, cap=2.0)   # the agent's turn before this one waits on calls
MAX_HOLD = 3600.0                              # longest nak delay (a timer before a far deadline)


# ---- the decisions ------------------------------------------------------------------------------
def may_run(seq: int, first_pending: int | None, leased: bool) -> bool:
    """A turn (stream sequence `seq`) runs when it holds its agent's lease and no earlier turn of the
    agent is still queued; otherwise an earlier turn runs elsewhere and this one waits its turn."""
    return leased and (first_pending is None or first_pending >= seq)


def failure_code(exc: BaseException) -> str:
    """The status name a turn_failed event carries for `exc`."""
    return exc.code if isinstance(exc, MnemoError) else "INTERNAL"


@dataclass(frozen=True, slots=True)
class Retry:
    """Hand the turn back; JetStream delivers it again after `delay` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class Fail:
    """Give the turn up: report turn_failed with this code and message, and drop it."""

    code: str
    message: str


@dataclass(frozen=True, slots=True)
class DeliveryPolicy:
    """When a turn delivered `deliveries` times (1, 2, ...) comes again, and when it is given up.

    `order`: an earlier turn of the agent runs on another replica (short: it usually ends soon).
    `retry`: the turn failed on something transient, or NATS did not answer while claiming it.
    `pull`: consecutive pulls JetStream did not answer (restarting, consumer lost).
    `paused`: the agent's previous turn is paused on calls (a client-side tool, an approval); the
    turn is queued behind it (tried again until the pause ends, which may take minutes).
    `transient`: exception types worth a retry besides retryable domain errors (the consumer adds
    the NATS client's errors; this module knows no transport).
    """

    order: Backoff = ORDER_BACKOFF
    retry: Backoff = RETRY_BACKOFF
    pull: Backoff = PULL_BACKOFF
    paused: Backoff = PAUSED_BACKOFF
    max_deliveries: int = MAX_DELIVERIES
    transient: tuple[type[BaseException], ...] = (TimeoutError, ConnectionError)

    def is_transient(self, exc: BaseException) -> bool:
        """Worth retrying: a dependency or NATS briefly unavailable (restart, reconnect, timeout)."""
        if isinstance(exc, MnemoError):
            return exc.retryable
        return isinstance(exc, self.transient)

    def order_delay(self, deliveries: int) -> float:
        return self.order.delay(deliveries)

    def hold_delay(self, deliveries: int, wanted: float | None = None) -> float:
        """Delay of a turn that cannot run yet: `wanted` seconds (a timer's deadline), else the paused backoff."""
        if wanted is not None:
            return min(MAX_HOLD, max(0.05, wanted))
        return self.paused.delay(deliveries)

    def retry_delay(self, deliveries: int, exc: BaseException | None = None) -> float:
        """Delay before the next delivery after a failure (the error's `retry_after` hint, if longer)."""
        return self.retry.delay(deliveries, getattr(exc, "retry_after", None))

    def after_failure(self, exc: BaseException, failures: int) -> Retry | Fail:
        """What to do with a turn whose run raised `exc`, its `failures`-th failure. Failures, not
        deliveries: a turn handed back while it waited (behind a paused turn, an earlier turn) was
        delivered many times without failing once."""
        if self.is_transient(exc) and failures < self.max_deliveries:
            return Retry(self.retry_delay(failures, exc))
        return Fail(failure_code(exc), str(exc)[:500])


class FailureCounts:
    """How many times each turn failed on this replica (bounded: the least recently failed are
    forgotten first, and a turn another replica takes starts its count again)."""

    def __init__(self, size: int = 10_000) -> None:
        self.size = size
        self._counts: dict[str, int] = {}

    def failed(self, turn_id: str) -> int:
        """Note one more failure of `turn_id`; its count so far."""
        count = self._counts.pop(turn_id, 0) + 1
        self._counts[turn_id] = count  # re-inserted: most recent last
        while len(self._counts) > self.size:
            del self._counts[next(iter(self._counts))]
        return count

    def forget(self, turn_id: str) -> None:
        self._counts.pop(turn_id, None)


# ---- lease values -------------------------------------------------------------------------------
RELEASED = b""   # the value of a released lease: nobody holds it


class LeaseView(NamedTuple):
    owner: str    # "" when released
    live: bool    # held and not expired


def lease_value(owner: str, ttl: float, now: float) -> bytes:
    """A lease held by `owner` until `now + ttl` (seconds since the epoch): `<owner>|<expires_ms>`.
    The expiry travels in the value so that a crashed holder's lease can be taken over after `ttl`,
    independently of the bucket's own (longer) TTL."""
    return f"{owner}|{int((now + ttl) * 1000)}".encode()


def read_lease(value: bytes | None, now: float) -> LeaseView:
    """Who holds a lease value, and whether it is still live at `now` (unreadable = free)."""
    if not value:
        return LeaseView("", False)
    owner, _, expires = value.decode(errors="replace").partition("|")
    try:
        return LeaseView(owner, int(expires) >= now * 1000)
    except ValueError:
        return LeaseView(owner, False)


# ---- per-agent order on this replica ------------------------------------------------------------
@dataclass
class AgentOrder:
    """This replica's turns of one agent go one at a time, the earliest stream sequence first.

    `await enter(key, seq)` returns once no other turn of agent `key` is between `enter` and `leave`
    here; `leave(key)` lets the waiting turn with the lowest sequence in. (Turns of the agent running
    on other replicas are ordered through the work queue and the lease: see `may_run`.)
    """

    _waiting: dict[str, list[tuple[int, int, asyncio.Future[None]]]] = field(default_factory=dict)
    _tie: itertools.count[int] = field(default_factory=itertools.count)

    def busy(self, key: str) -> bool:
        return key in self._waiting

    async def enter(self, key: str, seq: int) -> None:
        waiting = self._waiting.get(key)
        if waiting is None:
            self._waiting[key] = []   # present = a turn of the agent is in
            return
        entry = (seq, next(self._tie), asyncio.get_running_loop().create_future())
        heapq.heappush(waiting, entry)
        try:
            await entry[2]
        except asyncio.CancelledError:
            if entry[2].done() and not entry[2].cancelled():
                self.leave(key)   # let in just before the cancel: pass the turn on
            else:
                waiting.remove(entry)
                heapq.heapify(waiting)
            raise

    def leave(self, key: str) -> None:
        waiting = self._waiting.get(key)
        while waiting:
            _, _, next_in = heapq.heappop(waiting)
            if not next_in.done():
                next_in.set_result(None)
                return
        self._waiting.pop(key, None)
