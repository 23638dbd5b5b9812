"""The restart policy of `mnemo up` as pure logic: backoff per recent exit, the crash-loop window."""

from __future__ import annotations

import signal

from mnemo.cli.restarts import RestartPolicy, RestartTracker, exit_status
from mnemo.common.retry import Backoff


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def tracker(clock: Clock, **kw: object) -> RestartTracker:
    policy = RestartPolicy(backoff=Backoff(base=0.5, cap=10.0, jitter=False), **kw)  # type: ignore[arg-type]
    return RestartTracker(policy, clock=clock)


def test_delays_grow_with_recent_exits_and_the_fifth_within_a_minute_gives_up() -> None:
    clock = Clock()
    t = tracker(clock)
    decisions = []
    for _ in range(5):
        decisions.append(t.exited("memory"))
        clock.now += 1.0
    assert [d.delay for d in decisions[:4]] == [0.5, 1.0, 2.0, 4.0]
    assert [d.exits for d in decisions] == [1, 2, 3, 4, 5]
    assert not any(d.give_up for d in decisions[:4])
    assert decisions[4].give_up


def test_exits_older_than_the_window_are_forgotten() -> None:
    clock = Clock()
    t = tracker(clock)
    for _ in range(4):
        t.exited("llm-proxy")
        clock.now += 10.0
    assert t.recent_exits("llm-proxy") == 4
    clock.now += 60.0  # every exit so far is now more than 60 s old
    assert t.recent_exits("llm-proxy") == 0
    decision = t.exited("llm-proxy")
    assert (decision.exits, decision.delay, decision.give_up) == (1, 0.5, False)


def test_exits_at_the_window_edge_and_per_process_counting() -> None:
    clock = Clock()
    t = tracker(clock, max_exits=3, window=30.0)
    t.exited("orchestrator-1")
    clock.now += 15.0
    t.exited("orchestrator-1")
    assert not t.exited("orchestrator-2").give_up  # another process: its own count
    clock.now += 15.0  # the first exit is exactly 30 s old: out of the window
    assert t.exited("orchestrator-1").exits == 2
    clock.now += 1.0
    assert t.exited("orchestrator-1").give_up


def test_the_delay_is_capped_and_jittered_within_half_to_full() -> None:
    clock = Clock()
    t = RestartTracker(RestartPolicy(backoff=Backoff(base=4.0, cap=10.0, jitter=True), max_exits=100),
                       clock=clock)
    delays = [t.exited("nats").delay for _ in range(20)]
    assert 2.0 <= delays[0] <= 4.0
    assert all(5.0 <= d <= 10.0 for d in delays[2:])


def test_exit_status_names_signals() -> None:
    assert exit_status(3) == "code 3"
    assert exit_status(0) == "code 0"
    assert exit_status(-signal.SIGKILL) == "signal SIGKILL"
    assert exit_status(-signal.SIGSEGV) == "signal SIGSEGV"
