"""The interface both search backends (embedded, Elasticsearch) implement.

Every call names tenant and agent; every query filters by both. Writes are idempotent upserts by id.
Vectors are float32 lists of the agent's embedding dimension (None when no embedding is available:
then ranking is by words alone). Scores: higher is better. A passage past its `expires_at` is hidden
from every read (search, similarity, counts) at once and deleted by the next `purge_expired`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, Protocol, TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(slots=True)
class RecallDoc:
    """One message in recall memory."""

    id: str
    tenant_id: str
    agent_id: str
    role: str
    text: str
    created_at: datetime
    turn_id: str = ""
    vector: list[float] | np.ndarray | None = None  # recall indexing hands over float32 arrays
    extra: dict[str, str] = field(default_factory=dict)  # serialized message fields (tool calls, name...)
    # Text of the neighbouring turns, indexed with the message (words and meaning) so that a question
    # finds the turn whose answer is spread over a short exchange. Empty: the backend derives it from
    # the stored neighbouring messages (one before, one after) and keeps it current as messages arrive.
    context: str = ""


@dataclass(slots=True)
class PassageDoc:
    """One passage in archival memory."""

    id: str
    tenant_id: str
    agent_id: str
    text: str
    created_at: datetime
    tags: list[str] = field(default_factory=list)
    source_id: str = ""
    position: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    vector: list[float] | None = None
    expires_at: datetime | None = None  # hidden from every read from then on; deleted by purge_expired


@dataclass(slots=True)
class PassageFilter:
    """Which passages a bulk delete takes: those matching every filter given (None: not filtered)."""

    tags: list[str] | None = None          # all must match
    start: datetime | None = None          # created at or after
    end: datetime | None = None            # created at or before
    source_id: str | None = None
    ids: list[str] | None = None

    @property
    def empty(self) -> bool:
        return not (self.tags or self.start or self.end or self.source_id or self.ids)


@dataclass(slots=True)
class Hit(Generic[T]):
    doc: T
    score: float


@dataclass(slots=True)
class Page(Generic[T]):
    hits: list[Hit[T]]
    total: int


class DimensionMismatch(ValueError):
    """A vector's dimension differs from the one the agent's index was created with."""


def batch_dim(dims: set[int]) -> int | None:
    """The one vector dimension of a write batch (None without vectors); DimensionMismatch if mixed."""
    if len(dims) > 1:
        raise DimensionMismatch(f"one batch mixes vector dimensions {sorted(dims)}")
    return next(iter(dims), None)


def check_dim(dim: int, current: int | None, kind: str) -> None:
    """DimensionMismatch unless `dim` is the dimension `current` the agent's `kind` index was created with."""
    if dim != current:
        raise DimensionMismatch(
            f"vector dimension {dim} does not match this agent's {kind} index (dimension {current})")


class SearchBackend(Protocol):
    async def start(self) -> None: ...
    async def close(self) -> None: ...

    # Recall
    async def index_messages(self, docs: list[RecallDoc]) -> None: ...
    async def search_messages(self, tenant_id: str, agent_id: str, *, query: str = "",
                              vector: list[float] | None = None, start: datetime | None = None,
                              end: datetime | None = None, role: str | None = None,
                              offset: int = 0, limit: int = 10) -> Page[RecallDoc]:
        """Ranked by relevance when `query` is given, else newest first."""
        ...
    async def count_messages(self, tenant_id: str, agent_id: str) -> int: ...

    # Archival
    async def insert_passages(self, docs: list[PassageDoc]) -> None:
        """Searchable as soon as this returns (read-your-writes)."""
        ...
    async def search_passages(self, tenant_id: str, agent_id: str, *, query: str = "",
                              vector: list[float] | None = None, tags: list[str] | None = None,
                              offset: int = 0, limit: int = 10) -> Page[PassageDoc]:
        """Hybrid (words + meaning, fused) when `query` is given, else newest first."""
        ...
    async def delete_passage(self, tenant_id: str, agent_id: str, passage_id: str) -> bool: ...
    async def count_passages(self, tenant_id: str, agent_id: str) -> int: ...
    async def get_passages(self, tenant_id: str, agent_id: str, ids: list[str]) -> list[PassageDoc]:
        """The live passages among `ids` (any order; missing and expired ones left out)."""
        ...
    async def similar_passages(self, tenant_id: str, agent_id: str, vectors: list[list[float]], *,
                               min_similarity: float, limit: int = 3) -> list[list[Hit[PassageDoc]]]:
        """For each vector, the live passages whose cosine reaches `min_similarity`, best first
        (score = cosine). An agent without vectors yet gets empty lists."""
        ...
    async def passage_vectors(self, tenant_id: str, agent_id: str, *, limit: int) -> list[PassageDoc]:
        """The newest `limit` live passages that have a vector, with it."""
        ...
    async def delete_passages(self, tenant_id: str, agent_id: str, where: PassageFilter) -> int:
        """Delete the passages matching `where` (never all: an empty filter deletes nothing); how many."""
        ...
    async def purge_expired(self, now: datetime) -> int:
        """Delete every passage (of every agent) expired at `now`; how many."""
        ...

    # Whole agent
    async def delete_agent(self, tenant_id: str, agent_id: str) -> None: ...
