"""Hearing of a child process's exit without polling: a Linux pidfd per child, read by the event loop.

`mnemo up` supervises its processes for as long as the stack runs; waking every fraction of a second
to ask each one whether it is still there was a third of an idle stack's wake-ups. A pidfd becomes
readable when its process exits, so the supervisor sleeps until one does (or a restart falls due).
Where pidfds are not available (not Linux, or a kernel before 5.3), `watching` is False and the
caller polls as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import os


class ExitWatch:
    """Sets `exited` when any watched process exits. Each pid is watched once; `sync` follows the
    set of pids as processes are restarted."""

    def __init__(self) -> None:
        self.exited = asyncio.Event()
        self.watching = hasattr(os, "pidfd_open")
        self._loop = asyncio.get_running_loop()
        self._fds: dict[int, int] = {}

    def sync(self, pids: list[int]) -> None:
        """Watch exactly `pids` (a pid no longer listed is let go)."""
        wanted = set(pids)
        for pid in [p for p in self._fds if p not in wanted]:
            self._forget(pid)
        for pid in wanted - self._fds.keys():
            if not self.watching:
                return
            try:
                fd = os.pidfd_open(pid)
            except ProcessLookupError:  # gone already: the caller's poll sees it
                self.exited.set()
                continue
            except OSError:  # no pidfd support in this kernel: poll instead
                self.watching = False
                self.close()
                return
            self._fds[pid] = fd
            self._loop.add_reader(fd, self._on_exit, pid)

    def _on_exit(self, pid: int) -> None:
        # A pidfd stays readable once its process is gone: stop reading it before it fires again.
        fd = self._fds.get(pid)
        if fd is not None:
            self._loop.remove_reader(fd)
        self.exited.set()

    def _forget(self, pid: int) -> None:
        fd = self._fds.pop(pid)
        self._loop.remove_reader(fd)
        with contextlib.suppress(OSError):
            os.close(fd)

    def close(self) -> None:
        for pid in list(self._fds):
            self._forget(pid)
