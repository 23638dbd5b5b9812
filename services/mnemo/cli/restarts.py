"""When `mnemo up` restarts a process that died, and when it gives up (pure logic, clock injected).

A process that exits after start-up is restarted after `Backoff.delay(n)`, n being its exits within
the crash-loop window: a process that crashed once long ago restarts at once, one that keeps
crashing waits longer each time. `max_exits` exits within `window` seconds is a crash loop: the
stack stops.
"""

from __future__ import annotations

import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mnemo.common.retry import Backoff


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """How soon to restart a dead process and how many exits make a crash loop."""

    backoff: Backoff = field(default_factory=lambda: Backoff(base=0.5, cap=10.0, jitter=True))
    max_exits: int = 5
    window: float = 60.0


@dataclass(frozen=True, slots=True)
class RestartDecision:
    """What to do after an exit: restart after `delay` seconds, or (`give_up`) stop the stack."""

    exits: int          # exits of this process within the window, this one included
    delay: float        # seconds before the restart (0 when giving up)
    give_up: bool


class RestartTracker:
    """Counts each process's recent exits and decides, per exit, restart-after-delay or give up."""

    def __init__(self, policy: RestartPolicy | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy or RestartPolicy()
        self.clock = clock
        self._exits: dict[str, deque[float]] = {}

    def exited(self, name: str) -> RestartDecision:
        """Record one exit (or failed restart) of `name` now and decide what follows."""
        now = self.clock()
        recent = self._exits.setdefault(name, deque())
        recent.append(now)
        while recent and recent[0] <= now - self.policy.window:
            recent.popleft()
        exits = len(recent)
        if exits >= self.policy.max_exits:
            return RestartDecision(exits, 0.0, give_up=True)
        return RestartDecision(exits, self.policy.backoff.delay(exits), give_up=False)

    def recent_exits(self, name: str) -> int:
        """Exits of `name` within the window, as of now."""
        now = self.clock()
        return sum(1 for t in self._exits.get(name, ()) if t > now - self.policy.window)


def exit_status(returncode: int) -> str:
    """A process's exit status for people: 'code 3', or 'signal SIGKILL' for a signal."""
    if returncode < 0:
        try:
            return f"signal {signal.Signals(-returncode).name}"
        except ValueError:
            return f"signal {-returncode}"
    return f"code {returncode}"
