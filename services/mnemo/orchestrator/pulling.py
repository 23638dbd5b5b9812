"""The mechanics every durable pull consumer of the orchestrator shares (turns, consolidations):
binding to a durable consumer that may not exist yet, slots that bound how many deliveries run at
once, one task per delivery, and a stop that hands back what was pulled but not run.

The policies (how many to pull, order, retries) stay with each consumer."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig
from nats.js.errors import NotFoundError

from mnemo.common.natsutil import quietly

log = logging.getLogger(__name__)


async def ensure_consumer(js: JetStreamContext, stream: str, config: ConsumerConfig) -> None:
    """Create the durable consumer `config.durable_name` of `stream` unless it exists (any replica)."""
    assert config.durable_name
    try:
        await js.consumer_info(stream, config.durable_name)
        return
    except NotFoundError:
        pass
    try:
        await js.add_consumer(stream, config)
    except Exception as exc:  # another replica created it first
        log.debug("consumer %s create: %s", config.durable_name, exc)


class SlotPuller:
    """Pulls from one durable consumer into at most `concurrency` handler tasks at once."""

    def __init__(self, concurrency: int, handle: Callable[[Msg], Coroutine[Any, Any, None]], expires: float) -> None:
        self.concurrency = max(1, concurrency)
        self.handle = handle
        self.expires = expires     # seconds a pull request stays open
        self.psub: JetStreamContext.PullSubscription | None = None
        self.stopping = False
        self._slots = asyncio.Semaphore(self.concurrency)
        self._tasks: set[asyncio.Task[None]] = set()
        self._fetch: asyncio.Task[list[Msg]] | None = None   # the pull in progress

    async def bind(self, js: JetStreamContext, stream: str, durable: str) -> None:
        self.psub = await js.pull_subscribe_bind(durable, stream=stream)

    # ---- slots ----
    async def reserve(self, wanted: int, most: int) -> int:
        """Wait for a free slot, then take free slots up to `wanted` (at most `most`)."""
        await self._slots.acquire()
        free = 1
        limit = min(wanted, most)
        while free < limit and not self._slots.locked():
            await self._slots.acquire()  # does not block: a slot is free
            free += 1
        return free

    def release(self, n: int) -> None:
        for _ in range(n):
            self._slots.release()

    # ---- pulls and handlers ----
    async def fetch(self, n: int) -> list[Msg]:
        """Up to `n` deliveries (TimeoutError when none came within `expires`). Shielded: a stop lets
        the pull end instead of abandoning its request on the server."""
        assert self.psub is not None
        self._fetch = asyncio.create_task(self.psub.fetch(n, timeout=self.expires))
        try:
            msgs = await asyncio.shield(self._fetch)
        except asyncio.CancelledError:
            raise  # stop() waits for the pull in progress
        except BaseException:
            self._fetch = None
            raise
        self._fetch = None
        return msgs

    async def start(self, msgs: list[Msg], reserved: int) -> None:
        """Handle each of `msgs` in its own task, holding one of the `reserved` slots (the rest are
        freed). A delivery beyond them (to a pull request sent before a reconnect) runs if a slot is
        free, else is handed back at once for a replica that has one."""
        for msg in msgs:
            if reserved == 0:
                if self._slots.locked():
                    self._spawn(quietly(msg.nak()))
                    continue
                await self._slots.acquire()  # does not block: a slot is free
                reserved = 1
            reserved -= 1
            task = asyncio.create_task(self.handle(msg))
            self._tasks.add(task)
            task.add_done_callback(self._done)
        self.release(reserved)

    def _spawn(self, coro: Awaitable[None]) -> None:
        """A side task (a hand-back) that holds no slot; stop() waits for it too."""
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._slots.release()

    async def stop(self, loop: asyncio.Task[None] | None, nak_delay: float | None = None) -> None:
        """Stop the pull `loop`; deliveries of the pull in progress are handed back (nak) at once,
        handlers still running are cancelled (each hands its delivery back)."""
        self.stopping = True
        if loop is not None:
            loop.cancel()
            await asyncio.gather(loop, return_exceptions=True)
        if self._fetch is not None:
            # The pull in progress ends within `expires`. Abandoning it would leave its request open
            # on the server, and a delivery to it would wait a whole ack_wait.
            try:
                late = await asyncio.wait_for(self._fetch, self.expires + 0.5)
            except Exception:
                late = []
            for msg in late:
                await quietly(msg.nak(delay=nak_delay))
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.psub is not None:
            await quietly(self.psub.unsubscribe())
