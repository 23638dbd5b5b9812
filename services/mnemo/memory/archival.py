"""Archival writes: inserts (validated, embedded, deduplicated, with optional expiry), bulk deletes by
filter, groups of duplicate passages, and the periodic purge of expired passages.

Deduplication (dedup.py) runs before the write: duplicates inside the batch, then near-identical
stored passages (one similarity search for the batch), then an atomic claim per remaining text, so
that concurrent inserts of one text from several replicas store it once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from mnemo.common import ids
from mnemo.common.config import Settings
from mnemo.common.errors import FailedPrecondition, InvalidArgument
from mnemo.memory.dedup import Claim, ClaimBook, DedupPolicy, group_duplicates, normalized
from mnemo.memory.search.base import DimensionMismatch, PassageDoc, PassageFilter, SearchBackend
from mnemo.v1 import common_pb2, memory_pb2

log = logging.getLogger(__name__)

MAX_PASSAGE_CHARS = 100_000
MAX_ID_CHARS = 128
MAX_TTL_SECONDS = 100 * 365 * 86_400
DUPLICATE_SCAN = 2000          # newest passages looked at for duplicate groups
SIMILAR_CANDIDATES = 3         # stored passages compared with each new one
Embed = Callable[[common_pb2.AgentState, list[str]], Awaitable[list[list[float]]]]


def to_passage(doc: PassageDoc) -> common_pb2.Passage:
    return common_pb2.Passage(id=doc.id, text=doc.text, tags=doc.tags, source_id=doc.source_id,
                              position=doc.position, metadata=doc.metadata, created_at=_iso(doc.created_at),
                              expires_at=_iso(doc.expires_at) if doc.expires_at is not None else "")


def _iso(when: datetime) -> str:
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Inserted:
    """What an insert did, per passage in input order."""

    ids: list[str] = field(default_factory=list)
    duplicate: list[bool] = field(default_factory=list)
    expiring: int = 0

    @property
    def inserted(self) -> int:
        return self.duplicate.count(False)

    @property
    def deduplicated(self) -> int:
        return self.duplicate.count(True)

    def response(self) -> memory_pb2.InsertArchivalResponse:
        return memory_pb2.InsertArchivalResponse(ids=self.ids, duplicate=self.duplicate, inserted=self.inserted,
                                                 deduplicated=self.deduplicated, expiring=self.expiring)


def _time_or(value: str, default: datetime) -> datetime:
    try:
        return ids.parse_time(value) if value else default
    except ValueError:
        return default


def expiry_of(p: memory_pb2.PassageInput, now: datetime, i: int) -> datetime | None:
    """The passage's expiry: `expires_at`, or `ttl_seconds` from now; InvalidArgument for both or a bad one."""
    if p.expires_at and p.ttl_seconds:
        raise InvalidArgument(f"passage {i}: give expires_at or ttl_seconds, not both")
    if p.ttl_seconds:
        if p.ttl_seconds < 0 or p.ttl_seconds > MAX_TTL_SECONDS:
            raise InvalidArgument(f"passage {i}: ttl_seconds must be between 1 and {MAX_TTL_SECONDS}")
        return now + timedelta(seconds=p.ttl_seconds)
    if p.expires_at:
        try:
            return ids.parse_time(p.expires_at)
        except ValueError:
            raise InvalidArgument(f"passage {i}: invalid expires_at {p.expires_at!r}: RFC 3339 expected") from None
    return None


class ArchivalWriter:
    """The write side of archival memory over a search backend and the claims bucket."""

    def __init__(self, settings: Settings, backend: SearchBackend, claims: ClaimBook | None, embed: Embed) -> None:
        self.settings = settings
        self.backend = backend
        self.claims = claims
        self._embed = embed

    def docs(self, state: common_pb2.AgentState, passages: list[memory_pb2.PassageInput],
             created_at: list[str] | None) -> list[PassageDoc]:
        """Validated passages as documents (ids assigned, times and expiry resolved)."""
        now = ids.parse_time(ids.now_iso())
        docs: list[PassageDoc] = []
        for i, p in enumerate(passages):
            if not p.text.strip():
                raise InvalidArgument(f"passage {i} has no text")
            if len(p.text) > MAX_PASSAGE_CHARS:
                raise InvalidArgument(
                    f"passage {i} has {len(p.text)} characters; the maximum is {MAX_PASSAGE_CHARS}")
            if len(p.id) > MAX_ID_CHARS:
                raise InvalidArgument(f"passage {i}: id longer than {MAX_ID_CHARS} characters")
            docs.append(PassageDoc(id=p.id or ids.new_id("psg"), tenant_id=state.config.tenant_id,
                                   agent_id=state.config.id, text=p.text,
                                   created_at=_time_or(created_at[i] if created_at else "", now), tags=list(p.tags),
                                   source_id=p.source_id, position=p.position, metadata=dict(p.metadata),
                                   expires_at=expiry_of(p, now, i)))
        return docs

    async def insert(self, state: common_pb2.AgentState, passages: list[memory_pb2.PassageInput],
                     created_at: list[str] | None = None, dedup: str = "") -> Inserted:
        """Validate, deduplicate, embed and insert (searchable on return)."""
        policy = DedupPolicy.of(self.settings, dedup)
        docs = self.docs(state, passages, created_at)
        out = Inserted(ids=[d.id for d in docs], duplicate=[False] * len(docs))
        first_of: dict[str, int] = {}
        fresh: list[int] = []
        for i, d in enumerate(docs):
            j = first_of.setdefault(normalized(d.text), i) if policy.enabled else i
            if j != i:
                out.ids[i], out.duplicate[i] = docs[j].id, True
            else:
                fresh.append(i)
        vectors = await self._embed(state, [docs[i].text for i in fresh])
        for i, v in zip(fresh, vectors, strict=True):
            docs[i].vector = v
        try:
            if policy.enabled:
                fresh = await self._known(state, docs, fresh, policy, out)
            claims = await self._claim(state, docs, fresh, policy, out)
            owned = [i for i in fresh if not out.duplicate[i]]
            try:
                if owned:
                    await self.backend.insert_passages([docs[i] for i in owned])
            except BaseException:
                await asyncio.gather(*(self.claims.release(c) for c in claims if self.claims is not None))
                raise
            if self.claims is not None:
                await asyncio.gather(*(self.claims.done(c) for c in claims))
        except DimensionMismatch as exc:
            raise FailedPrecondition(f"embedding dimension mismatch: {exc}") from None
        out.expiring = sum(1 for i in fresh if not out.duplicate[i] and docs[i].expires_at is not None)
        return out

    async def _known(self, state: common_pb2.AgentState, docs: list[PassageDoc], fresh: list[int],
                     policy: DedupPolicy, out: Inserted) -> list[int]:
        """Mark the passages a stored one already says; the rest, still to claim."""
        with_vec = [i for i in fresh if docs[i].vector is not None]
        found = await self.backend.similar_passages(
            state.config.tenant_id, state.config.id, [docs[i].vector for i in with_vec],  # type: ignore[misc]
            min_similarity=min(policy.min_similarity, 0.999), limit=SIMILAR_CANDIDATES)
        for i, hits in zip(with_vec, found, strict=True):
            match = next((h.doc for h in hits if policy.duplicates(docs[i].text, h.doc.text, h.score)), None)
            if match is not None:
                out.ids[i], out.duplicate[i] = match.id, True
        return [i for i in fresh if not out.duplicate[i]]

    async def _claim(self, state: common_pb2.AgentState, docs: list[PassageDoc], fresh: list[int],
                     policy: DedupPolicy, out: Inserted) -> list[Claim]:
        """Claim each remaining text; a text another writer claimed first is its passage."""
        if not policy.enabled or self.claims is None or not fresh:
            return []
        tenant_id, agent_id = state.config.tenant_id, state.config.id

        async def exists(passage_id: str) -> bool:
            return bool(await self.backend.get_passages(tenant_id, agent_id, [passage_id]))

        claims = await asyncio.gather(*(self.claims.claim(tenant_id, agent_id, docs[i].text, docs[i].id, exists)
                                        for i in fresh))
        owned: list[Claim] = []
        for i, claim in zip(fresh, claims, strict=True):
            if claim.owned:
                owned.append(claim)
            else:
                out.ids[i], out.duplicate[i] = claim.passage_id, True
        return owned

    async def delete_where(self, state: common_pb2.AgentState, req: memory_pb2.BulkDeleteArchivalRequest) -> int:
        where = PassageFilter(tags=list(req.tags) or None, source_id=req.source_id or None, ids=list(req.ids) or None)
        for name in ("start", "end"):
            value = getattr(req, name)
            if value:
                try:
                    when = ids.parse_time(value)
                except ValueError:
                    raise InvalidArgument(f"invalid {name} {value!r}: RFC 3339 or YYYY-MM-DD expected") from None
                if name == "end" and len(value) == 10:  # a whole day: up to its end
                    when += timedelta(days=1) - timedelta(microseconds=1)
                setattr(where, name, when)
        if where.empty:
            raise InvalidArgument("give at least one filter (tags, start, end, source_id, ids): "
                                  "a bulk delete never takes everything")
        if len(req.ids) > 10_000:
            raise InvalidArgument("at most 10000 ids in one bulk delete")
        return await self.backend.delete_passages(state.config.tenant_id, state.config.id, where)

    async def duplicate_groups(self, state: common_pb2.AgentState, min_similarity: float,
                               limit: int) -> memory_pb2.FindArchivalDuplicatesResponse:
        if min_similarity < 0 or min_similarity > 1 or limit < 0:
            raise InvalidArgument("min_similarity must be within [0, 1] and limit >= 0")
        base = DedupPolicy.of(self.settings, "on")
        policy = DedupPolicy(True, min_similarity or base.min_similarity, base.min_word_overlap)
        docs = await self.backend.passage_vectors(state.config.tenant_id, state.config.id,
                                                  limit=min(limit or DUPLICATE_SCAN, 20_000))
        return memory_pb2.FindArchivalDuplicatesResponse(groups=[
            memory_pb2.DuplicateGroup(passages=[to_passage(d) for d in group], similarity=low)
            for group, low in group_duplicates(docs, policy)])


async def sweep_expired(backend: SearchBackend, every: float) -> None:
    """Delete expired passages every `every` seconds, forever (a memory service task)."""
    while True:
        await asyncio.sleep(every)
        try:
            n = await backend.purge_expired(datetime.now(UTC))
            if n:
                log.info("deleted %d expired archival passages", n)
        except Exception as exc:
            log.warning("expired passages not purged (retried in %.0fs): %s", every, exc)
