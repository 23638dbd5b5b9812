"""Per-agent step leases in the KV bucket `mnemo_leases` (create = acquire, CAS refresh, delete)."""

from __future__ import annotations

import logging
import time

from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

log = logging.getLogger(__name__)


class Lease:
    def __init__(self, key: str, revision: int) -> None:
        self.key = key
        self.revision = revision


class LeaseManager:
    """Leases carry their own expiry (`<owner>|<expires_ms>`) so a crashed holder's lease can be taken
    over after `ttl` seconds, independently of the bucket's own (longer) TTL."""

    def __init__(self, kv: KeyValue, owner: str, ttl: float) -> None:
        self.kv = kv
        self.owner = owner
        self.ttl = ttl
        # Revision of the delete marker this replica left per key: re-acquiring the same agent's
        # lease is then one CAS write instead of create + read + update.
        self._released: dict[str, int] = {}

    def _value(self) -> bytes:
        return f"{self.owner}|{int((time.time() + self.ttl) * 1000)}".encode()

    async def acquire(self, key: str) -> Lease | None:
        """Take the lease, or None when another live holder has it."""
        marker = self._released.pop(key, None)
        if marker is not None:
            try:
                return Lease(key, await self.kv.update(key, self._value(), last=marker))
            except KeyWrongLastSequenceError:
                pass  # someone else took (and maybe released) it since: the general path
        try:
            return Lease(key, await self.kv.create(key, self._value()))
        except KeyWrongLastSequenceError:
            pass
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:  # released meanwhile (deleted): try once more
            try:
                return Lease(key, await self.kv.create(key, self._value()))
            except KeyWrongLastSequenceError:
                return None
        try:
            owner, _, expires = (entry.value or b"").decode().partition("|")
            expired = int(expires) < time.time() * 1000
        except ValueError:
            expired = True
        if not expired:
            return None
        try:
            log.info("taking over the expired lease %s of %s", key, owner)
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
        try:
            ack = await self.kv._js.publish(
                f"{self.kv._pre}{lease.key}",
                headers={"KV-Operation": "DEL", "Nats-Expected-Last-Subject-Sequence": str(lease.revision)})
        except Exception as exc:
            log.debug("lease %s not released: %s", lease.key, exc)
            return
        self._released[lease.key] = ack.seq
        if len(self._released) > 100_000:
            self._released.clear()
