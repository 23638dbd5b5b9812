"""Which agent shards of the embedded backend hold passages that will expire, and when the first does.

A small SQLite file beside the shards (`<root>/expiry.sqlite`): one row per (tenant, agent) with the
earliest expiry among its passages. The purge opens only the shards whose time has come, instead of
every shard on disk. Thread-safe (one lock); called from worker threads.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

SCHEMA = """
CREATE TABLE IF NOT EXISTS expiring (
  tenant TEXT NOT NULL, agent TEXT NOT NULL, next REAL NOT NULL, PRIMARY KEY (tenant, agent));
CREATE INDEX IF NOT EXISTS expiring_next ON expiring (next);
"""


class ExpiryRegistry:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None

    def _conn(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=10000")
            self._db.executescript(SCHEMA)
        return self._db

    def note(self, tenant_id: str, agent_id: str, when: float) -> None:
        """A passage of the agent expires at `when` (epoch seconds)."""
        with self._lock:
            self._conn().execute(
                "INSERT INTO expiring(tenant, agent, next) VALUES (?,?,?) ON CONFLICT(tenant, agent)"
                " DO UPDATE SET next = min(next, excluded.next)", (tenant_id, agent_id, when))

    def due(self, now: float) -> list[tuple[str, str]]:
        """The agents with a passage expired at `now`."""
        with self._lock:
            return [(r[0], r[1]) for r in self._conn().execute(
                "SELECT tenant, agent FROM expiring WHERE next <= ? ORDER BY next", (now,))]

    def settle(self, tenant_id: str, agent_id: str, next_expiry: float | None) -> None:
        """After a purge: the agent's next expiry (None: nothing left to expire)."""
        with self._lock:
            if next_expiry is None:
                self._conn().execute("DELETE FROM expiring WHERE tenant = ? AND agent = ?", (tenant_id, agent_id))
            else:
                self._conn().execute("UPDATE expiring SET next = ? WHERE tenant = ? AND agent = ?",
                                     (next_expiry, tenant_id, agent_id))

    def forget(self, tenant_id: str, agent_id: str | None = None) -> None:
        with self._lock:
            if agent_id is None:
                self._conn().execute("DELETE FROM expiring WHERE tenant = ?", (tenant_id,))
            else:
                self._conn().execute("DELETE FROM expiring WHERE tenant = ? AND agent = ?", (tenant_id, agent_id))

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
