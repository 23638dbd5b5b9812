"""Tenants and API keys in the gateway's own KV bucket. Keys are stored only as sha256 hashes.

KV layout (bucket subjects.KV_TENANTS):
  tenant.<tenant_id>  -> {"id", "name", "created_at", "limits"?: {"rate_per_second", "burst"}}
  key.<key_id>        -> {"id", "tenant_id", "hash", "created_at"}
  hash.<sha256 hex>   -> {"key_id", "tenant_id"}
Revoking deletes the hash entry and the key record, so a revoked key resolves to nothing.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue

from mnemo.common.ids import is_token, new_id, now_iso
from mnemo.gateway.ratelimit import UNLIMITED, TenantLimits

KEY_PREFIX = "mk-"
LOCAL_TENANT = "local"


class TenantNotFound(Exception):
    """No such tenant."""


class KeyNotFound(Exception):
    """No such key id."""


@dataclass(frozen=True)
class Principal:
    """Who a request acts as: one tenant, through one key, within the tenant's rate limits."""

    tenant_id: str
    key_id: str
    limits: TenantLimits = UNLIMITED


def hash_key(key: str) -> str:
    """sha256 of a high-entropy key (no salt needed: keys are 256-bit random)."""
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


async def _get_json(kv: KeyValue, key: str) -> dict[str, Any] | None:
    try:
        entry = await kv.get(key)
    except KeyNotFoundError:
        return None
    if entry is None or not entry.value:
        return None
    return json.loads(entry.value)


class TenantStore:
    """Create tenants and keys, resolve keys to principals (cached for `cache_ttl` seconds)."""

    def __init__(self, kv: KeyValue, cache_ttl: float = 2.0, default_limits: TenantLimits = UNLIMITED) -> None:
        self.kv = kv
        self.cache_ttl = cache_ttl
        self.default_limits = default_limits
        self._cache: dict[str, tuple[Principal | None, float]] = {}

    def limits_of(self, record: dict[str, Any]) -> TenantLimits:
        """A tenant's own limits; else none for the local tenant (nobody shares an embedded stack with
        it), the defaults for the others."""
        own = record.get("limits")
        if isinstance(own, dict):
            return TenantLimits(float(own.get("rate_per_second", 0.0)), int(own.get("burst", 1)))
        return UNLIMITED if record.get("id") == LOCAL_TENANT else self.default_limits

    def describe(self, record: dict[str, Any]) -> dict[str, Any]:
        """A tenant record as the admin API shows it, with the limits in force."""
        limits = self.limits_of(record)
        return {**{k: v for k, v in record.items() if k != "limits"},
                "limits": {"rate_per_second": limits.rate_per_second, "burst": limits.burst,
                           "source": "tenant" if isinstance(record.get("limits"), dict) else
                           ("local" if record.get("id") == LOCAL_TENANT else "default")}}

    async def set_limits(self, tenant_id: str, limits: TenantLimits | None) -> dict[str, Any]:
        """Give the tenant its own limits (None: back to the defaults). Every gateway replica applies
        them within its key cache TTL."""
        record = await self.get_tenant(tenant_id)
        if limits is None:
            record.pop("limits", None)
        else:
            record["limits"] = {"rate_per_second": limits.rate_per_second, "burst": limits.burst}
        await self.kv.put(f"tenant.{tenant_id}", json.dumps(record).encode())
        self._cache.clear()
        return record

    async def create_tenant(self, name: str, tenant_id: str | None = None) -> dict[str, Any]:
        tid = tenant_id or new_id("tenant")
        record = {"id": tid, "name": name, "created_at": now_iso()}
        await self.kv.put(f"tenant.{tid}", json.dumps(record).encode())
        return record

    async def get_tenant(self, tenant_id: str) -> dict[str, Any]:
        if not is_token(tenant_id):
            raise TenantNotFound(tenant_id)
        record = await _get_json(self.kv, f"tenant.{tenant_id}")
        if record is None:
            raise TenantNotFound(tenant_id)
        return record

    async def create_key(self, tenant_id: str) -> tuple[str, dict[str, Any]]:
        """A new key for the tenant: (the key itself, shown once; its record)."""
        await self.get_tenant(tenant_id)
        key = new_key()
        key_id = new_id("key")
        digest = hash_key(key)
        record = {"id": key_id, "tenant_id": tenant_id, "hash": digest, "created_at": now_iso()}
        await self.kv.put(f"key.{key_id}", json.dumps(record).encode())
        await self.kv.put(f"hash.{digest}", json.dumps({"key_id": key_id, "tenant_id": tenant_id}).encode())
        return key, record

    async def revoke_key(self, key_id: str) -> None:
        if not is_token(key_id):
            raise KeyNotFound(key_id)
        record = await _get_json(self.kv, f"key.{key_id}")
        if record is None:
            raise KeyNotFound(key_id)
        await self.kv.delete(f"hash.{record['hash']}")
        await self.kv.delete(f"key.{key_id}")
        self._cache.pop(record["hash"], None)

    async def resolve(self, key: str) -> Principal | None:
        """The principal of a key, or None when the key is unknown or revoked."""
        if not key.startswith(KEY_PREFIX) or len(key) > 200:
            return None
        digest = hash_key(key)
        now = time.monotonic()
        cached = self._cache.get(digest)
        if cached is not None and cached[1] > now:
            return cached[0]
        found = await _get_json(self.kv, f"hash.{digest}")
        principal = None
        if found:
            tenant = await _get_json(self.kv, f"tenant.{found['tenant_id']}") or {"id": found["tenant_id"]}
            principal = Principal(found["tenant_id"], found["key_id"], self.limits_of(tenant))
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[digest] = (principal, now + self.cache_ttl)
        return principal

    async def ensure_local_key(self, key_file: Path) -> str:
        """Ensure tenant "local" exists and `key_file` holds a valid key of it (mode 0600)."""
        try:
            await self.get_tenant(LOCAL_TENANT)
        except TenantNotFound:
            await self.create_tenant("local", tenant_id=LOCAL_TENANT)
        try:
            existing = (await asyncio.to_thread(key_file.read_text)).strip()
        except OSError:
            existing = ""
        if existing:
            principal = await self.resolve(existing)
            if principal is not None and principal.tenant_id == LOCAL_TENANT:
                return existing
        key, _ = await self.create_key(LOCAL_TENANT)
        key_file.parent.mkdir(parents=True, exist_ok=True)
        tmp = key_file.with_name(key_file.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
        os.chmod(tmp, 0o600)
        os.replace(tmp, key_file)
        return key
