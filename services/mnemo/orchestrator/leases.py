"""Per-agent step leases in the KV bucket `mnemo_leases`: a CAS write takes, refreshes and releases one."""

from __future__ import annotations

import logging
import time

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mnemo.orchestrator.scheduling import RELEASED, lease_value, read_lease

log = logging.getLogger(__name__)


class Lease:
    def __init__(self, key: str, revision: int) -> None:
        self.key = key
        self.revision = revision


class LeaseManager:
    """Leases carry their own expiry (scheduling.lease_value) so a crashed holder's lease can be taken
    over after `ttl` seconds. Releasing writes the empty value (a CAS update, not a delete): its
    revision is known, so re-acquiring the same agent's lease is one CAS write instead of three."""

    def __init__(self, kv: KeyValue, owner: str, ttl: float) -> None:
        self.kv = kv
        self.owner = owner
        self.ttl = ttl
        self._released: dict[str, int] = {}   # key -> revision of this replica's release write

    def likely_ours(self, key: str) -> bool:
        """Whether this replica gave the lease back last (as far as it knows): taking it again is then
        one CAS write that all but surely succeeds."""
        return key in self._released

    def _value(self) -> bytes:
        return lease_value(self.owner, self.ttl, time.time())

    async def acquire(self, key: str) -> Lease | None:
        """Take the lease, or None when another live holder has it."""
        released = self._released.pop(key, None)
        if released is not None:
            try:
                return Lease(key, await self.kv.update(key, self._value(), last=released))
            except KeyWrongLastSequenceError:
                pass  # someone else took (and maybe released) it since: the general path
        try:  # a key nobody wrote yet (or aged out of the bucket)
            return Lease(key, await self.kv.update(key, self._value(), last=0))
        except KeyWrongLastSequenceError:
            pass
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError as err:  # gone meanwhile, or a delete marker: write over it
            last = err.entry.revision if err.entry is not None else 0
            try:
                return Lease(key, await self.kv.update(key, self._value(), last=last))
            except KeyWrongLastSequenceError:
                return None
        held = read_lease(entry.value, time.time())
        if held.live:
            return None
        if held.owner:
            log.info("taking over the expired lease %s of %s", key, held.owner)
        try:
            return Lease(key, await self.kv.update(key, self._value(), last=entry.revision))
        except KeyWrongLastSequenceError:
            return None

    async def refresh(self, lease: Lease) -> bool:
        try:
            lease.revision = await self.kv.update(lease.key, self._value(), last=lease.revision)
            return True
        except KeyWrongLastSequenceError:
            log.warning("lease %s was lost", lease.key)
            return False

    async def release(self, lease: Lease) -> None:
        """Give the lease up (a no-op when it was lost meanwhile)."""
        try:
            try:
                revision = await self.kv.update(lease.key, RELEASED, last=lease.revision)
            except KeyWrongLastSequenceError:
                # A refresh cancelled after its write was sent (the turn ended while it ran) moved
                # the revision without telling `lease`: still ours, so release it at its revision,
                # or the agent's next turn waits out the TTL.
                entry = await self.kv.get(lease.key)
                if entry.value is None or read_lease(entry.value, time.time()).owner != self.owner:
                    return
                revision = await self.kv.update(lease.key, RELEASED, last=entry.revision)
        except Exception as exc:
            log.debug("lease %s not released: %s", lease.key, exc)
            return
        self._released[lease.key] = revision
        if len(self._released) > 100_000:
            self._released.clear()
