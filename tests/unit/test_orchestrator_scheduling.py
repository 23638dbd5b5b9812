"""Scheduling rules of the turn consumer, without NATS: order, leases, delivery policy, failures."""

from __future__ import annotations

import asyncio

import pytest

from mnemo.common.errors import (
    Conflict,
    ContextOverflow,
    Internal,
    InvalidArgument,
    MnemoError,
    NotFound,
    ResourceExhausted,
    Unavailable,
    error_for,
)
from mnemo.common.retry import Backoff
from mnemo.orchestrator.scheduling import (
    MAX_DELIVERIES,
    RELEASED,
    AgentOrder,
    DeliveryPolicy,
    Fail,
    FailureCounts,
    Retry,
    failure_code,
    lease_value,
    may_run,
    read_lease,
)

EXACT = DeliveryPolicy(order=Backoff(0.02, 0.64, jitter=False), retry=Backoff(0.4, 10.0, jitter=False),
                       pull=Backoff(0.1, 2.0, jitter=False))


# ---- which turn runs ----------------------------------------------------------------------------
def test_a_turn_runs_with_the_lease_and_no_earlier_turn_queued():
    assert may_run(7, None, leased=True)
    assert may_run(7, 7, leased=True)          # it is itself the oldest queued turn of the agent
    assert not may_run(7, 5, leased=True)      # turn 5 of the agent is still queued (runs elsewhere)
    assert not may_run(7, None, leased=False)  # another replica holds the agent's lease
    assert not may_run(7, 7, leased=False)


# ---- transient or permanent ---------------------------------------------------------------------
class TransportDown(Exception):
    pass


@pytest.mark.parametrize("exc,transient", [
    (Unavailable("memory restarting"), True),
    (Conflict("lost a CAS"), True),
    (ResourceExhausted("rate limited"), True),
    (Internal("bug in the callee"), True),
    (error_for("UNKNOWN", "?"), True),
    (error_for("DATA_LOSS", "?"), True),
    (NotFound("no such agent"), False),
    (InvalidArgument("bad"), False),
    (ContextOverflow("too long"), False),
    (Unavailable("down for good", retryable=False), False),
    (MnemoError("plain"), False),
    (TimeoutError(), True),
    (ConnectionResetError(), True),
    (ValueError("a bug"), False),
    (TransportDown(), False),
])
def test_transient_failures_are_retryable_domain_errors_timeouts_and_connection_errors(exc, transient):
    assert DeliveryPolicy().is_transient(exc) is transient


def test_the_transport_names_its_own_transient_errors():
    policy = DeliveryPolicy(transient=(TimeoutError, TransportDown))
    assert policy.is_transient(TransportDown())
    assert not policy.is_transient(ConnectionResetError())
    assert not policy.is_transient(NotFound("x"))  # a domain error says so itself


# ---- delays -------------------------------------------------------------------------------------
def test_delays_double_per_delivery_up_to_their_caps():
    assert [EXACT.order_delay(n) for n in range(1, 9)] == [0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 0.64, 0.64]
    assert [EXACT.retry_delay(n) for n in range(1, 7)] == [0.4, 0.8, 1.6, 3.2, 6.4, 10.0]
    assert [EXACT.pull.delay(n) for n in range(1, 7)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0]


def test_jittered_delays_stay_within_half_and_the_full_delay():
    policy = DeliveryPolicy()
    for n in range(1, 12):
        full = EXACT.retry_delay(n)
        draws = {policy.retry_delay(n) for _ in range(50)}
        assert all(full / 2 <= d <= full for d in draws)
        assert len(draws) > 1  # replicas that failed together do not come back together
        order = EXACT.order_delay(n)
        assert all(order / 2 <= policy.order_delay(n) <= order for _ in range(20))


def test_a_retry_after_hint_longer_than_the_backoff_wins():
    assert EXACT.retry_delay(1, ResourceExhausted("slow down", retry_after=5.0)) == 5.0
    assert EXACT.retry_delay(6, ResourceExhausted("slow down", retry_after=5.0)) == 10.0
    assert EXACT.retry_delay(2, ValueError("no hint")) == 0.8


# ---- after a failed run -------------------------------------------------------------------------
def test_a_transient_failure_is_retried_until_max_deliveries_then_reported():
    err = Unavailable("llm-proxy restarting")
    assert EXACT.after_failure(err, 1) == Retry(0.4)
    assert EXACT.after_failure(err, MAX_DELIVERIES - 1) == Retry(10.0)
    assert EXACT.after_failure(err, MAX_DELIVERIES) == Fail("UNAVAILABLE", "llm-proxy restarting")


def test_a_permanent_failure_is_reported_at_once_with_its_status_name():
    assert EXACT.after_failure(NotFound("agent a1 not found"), 1) == Fail("NOT_FOUND", "agent a1 not found")
    assert EXACT.after_failure(ContextOverflow("x"), 1) == Fail("OUT_OF_RANGE", "x")
    verdict = EXACT.after_failure(KeyError("y" * 2000), 1)
    assert isinstance(verdict, Fail) and verdict.code == "INTERNAL" and len(verdict.message) == 500


def test_failure_codes():
    assert failure_code(Conflict("c")) == "ABORTED"
    assert failure_code(error_for("DATA_LOSS")) == "DATA_LOSS"
    assert failure_code(RuntimeError("r")) == "INTERNAL"
    assert failure_code(TimeoutError()) == "INTERNAL"


# ---- lease values -------------------------------------------------------------------------------
def test_a_lease_value_is_live_until_its_expiry():
    value = lease_value("orch-1", ttl=10, now=1000.0)
    assert value == b"orch-1|1010000"
    assert read_lease(value, now=1009.9) == ("orch-1", True)
    assert read_lease(value, now=1010.0) == ("orch-1", True)
    assert read_lease(value, now=1010.01) == ("orch-1", False)


@pytest.mark.parametrize("value", [RELEASED, None, b"orch-1", b"orch-1|soon", b"\xff|x"])
def test_released_or_unreadable_lease_values_are_free(value):
    assert not read_lease(value, now=0.0).live
    assert read_lease(RELEASED, now=0.0).owner == ""


# ---- per-agent order on one replica -------------------------------------------------------------
class Turn:
    """A turn of agent `key` that enters the order, records that it is in, and stays until told."""

    def __init__(self, order: AgentOrder, key: str, seq: int, entered: list[int]) -> None:
        self.seq = seq
        self.registered = asyncio.Event()
        self.inside = asyncio.Event()
        self.task = asyncio.create_task(self._run(order, key, entered))

    async def _run(self, order: AgentOrder, key: str, entered: list[int]) -> None:
        self.registered.set()  # enter() queues the turn before its first await
        await order.enter(key, self.seq)
        entered.append(self.seq)
        self.inside.set()


async def test_turns_of_one_agent_go_one_at_a_time_earliest_sequence_first():
    order, entered = AgentOrder(), []
    await order.enter("t1.a", 10)          # the agent's running turn
    await order.enter("t1.b", 11)          # another agent is not held up
    late, early = Turn(order, "t1.a", 14, entered), Turn(order, "t1.a", 12, entered)
    await late.registered.wait()
    await early.registered.wait()
    assert entered == [] and order.busy("t1.a")
    order.leave("t1.a")
    await asyncio.wait_for(early.inside.wait(), 5)
    assert entered == [12] and not late.inside.is_set()  # arrived second, but earlier in the stream
    order.leave("t1.a")
    await asyncio.wait_for(late.inside.wait(), 5)
    assert entered == [12, 14]
    order.leave("t1.a")
    assert not order.busy("t1.a") and order.busy("t1.b")
    order.leave("t1.b")
    assert not order.busy("t1.b")


async def test_a_cancelled_waiting_turn_leaves_the_queue():
    order, entered = AgentOrder(), []
    await order.enter("k", 1)
    gone = Turn(order, "k", 2, entered)
    await gone.registered.wait()
    gone.task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await gone.task
    order.leave("k")
    assert not order.busy("k") and entered == []


async def test_a_turn_cancelled_just_as_it_is_let_in_passes_the_agent_on():
    order, entered = AgentOrder(), []
    await order.enter("k", 1)
    first, second = Turn(order, "k", 2, entered), Turn(order, "k", 3, entered)
    await first.registered.wait()
    await second.registered.wait()
    order.leave("k")       # lets `first` in ...
    first.task.cancel()    # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first.task
    await asyncio.wait_for(second.inside.wait(), 5)
    assert entered == [3]
    order.leave("k")
    assert not order.busy("k")


def test_failures_not_deliveries_decide_when_a_turn_is_given_up() -> None:
    # A turn queued behind a paused one is delivered again and again without failing; its first
    # transient failure afterwards is retried, like any turn's.
    counts = FailureCounts(size=3)
    err = Unavailable("llm-proxy restarting")
    assert EXACT.after_failure(err, counts.failed("t1")) == Retry(0.4)
    assert [counts.failed("t1") for _ in range(MAX_DELIVERIES - 2)][-1] == MAX_DELIVERIES - 1
    assert isinstance(EXACT.after_failure(err, counts.failed("t1")), Fail)
    counts.forget("t1")
    assert counts.failed("t1") == 1
    for t in ("t2", "t3", "t4"):  # bounded: the least recently failed turn is forgotten
        counts.failed(t)
    assert counts.failed("t1") == 1 and counts.failed("t4") == 2


def test_the_turns_of_a_killed_replica_wait_about_a_lease_not_half_a_minute() -> None:
    """Regression (chaos: SIGKILL of the only orchestrator): the turns a killed replica had taken
    came back only after ack_wait, 30 s, stalling their agents' later turns that long. A running turn
    refreshes its ack deadline, so ack_wait need not cover a turn: it is at most the lease TTL now."""
    from mnemo.common.config import Settings

    settings = Settings()
    assert settings.orchestrator_ack_wait <= settings.orchestrator_lease_ttl <= 10.0
