"""Whether turns are backed up: recall indexing, background work, yields to them for a while.

Read from the orchestrators' durable consumer on the TURNS stream (turns waiting plus turns being
run), at most once every `every` seconds, so it sees every orchestrator replica whatever the layout.
"""

from __future__ import annotations

import logging
import time

from nats.js import JetStreamContext

from mnemo.common import subjects

log = logging.getLogger(__name__)

BUSY_TURNS = 8  # turns waiting or running at once from which the stack counts as busy


class TurnBacklog:
    def __init__(self, js: JetStreamContext, threshold: int = BUSY_TURNS, every: float = 0.1) -> None:
        self.js = js
        self.threshold = threshold
        self.every = every
        self._checked = float("-inf")
        self._busy = False

    async def busy(self) -> bool:
        """True while at least `threshold` turns wait or run; False when that cannot be read (no
        orchestrator yet, NATS trouble): then nothing waits for it."""
        now = time.monotonic()
        if now - self._checked < self.every:
            return self._busy
        self._checked = now
        try:
            info = await self.js.consumer_info(subjects.TURNS_STREAM, subjects.ORCHESTRATOR_CONSUMER)
            self._busy = (info.num_pending or 0) + (info.num_ack_pending or 0) >= self.threshold
        except Exception as exc:
            log.debug("turn backlog unknown: %s", exc)
            self._busy = False
        return self._busy
