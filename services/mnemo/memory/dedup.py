"""Archival deduplication: a passage that says what a stored passage already says is not stored again.

Two passages are duplicates when their texts are equal once normalised (case, punctuation and
spacing aside), or when both their cosine similarity and their word overlap (Jaccard over the sets
of words) reach the policy's thresholds, and they hold the same numbers and the same negations:
similar meaning alone would merge "the user is vegan" with "the user is not vegan", and "room 1207"
with "room 1208"; similar words alone would merge unrelated lists.

Concurrent inserts of the same text (two memory replicas, or two steps at once) are settled by an
atomic claim: a KV create on the key `<tenant>.<agent>.<hash of the normalised text>` in the bucket
`mnemo_passage_claims`. The first writer owns the text and inserts it; the others wait for the owner
to mark the claim done and answer with its passage id. A claim of a passage that no longer exists
(deleted, expired) or whose owner died before finishing is taken over with a compare-and-set. Claims
expire with the bucket's TTL: after that, later repeats are found by the similarity search.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
from nats.js.errors import APIError, KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from mnemo.common.config import Settings
from mnemo.common.errors import InvalidArgument
from mnemo.memory.search.base import PassageDoc

_WORD = re.compile(r"[^\W_]+", re.UNICODE)
CLAIM_WAIT = 10.0          # seconds a claim's owner has to finish its insert before it is taken over
CLAIM_POLL = 0.02
MODES = ("", "on", "off")
# ("t" is what is left of "n't": "can't" reads as "can", "t")
NEGATIONS = frozenset({"no", "not", "never", "none", "nothing", "nobody", "neither", "nor", "without", "cannot",
                       "t", "don", "doesn", "didn", "isn", "wasn", "aren", "weren", "won", "wouldn", "couldn",
                       "shouldn", "hasn", "haven", "hadn"})


@dataclass(frozen=True, slots=True)
class DedupPolicy:
    enabled: bool
    min_similarity: float
    min_word_overlap: float

    @classmethod
    def of(cls, settings: Settings, mode: str = "") -> DedupPolicy:
        """The service's policy (`MNEMO_ARCHIVAL_DEDUP*`), switched on or off for one request by `mode`."""
        if mode not in MODES:
            raise InvalidArgument(f"dedup must be on, off or empty (the service's setting), got {mode!r}")
        enabled = settings.archival_dedup if not mode else mode == "on"
        return cls(enabled, settings.archival_dedup_similarity, settings.archival_dedup_word_overlap)

    def duplicates(self, text: str, other: str, cosine: float) -> bool:
        if normalized(text) == normalized(other):
            return True
        if cosine < self.min_similarity or word_overlap(text, other) < self.min_word_overlap:
            return False
        a, b = words(text), words(other)
        return _facts(a) == _facts(b)


def _facts(ws: set[str]) -> set[str]:
    """The words whose difference changes what a text says: numbers and negations."""
    return {w for w in ws if w in NEGATIONS or any(c.isdigit() for c in w)}


def normalized(text: str) -> str:
    return " ".join(_WORD.findall(text.casefold()))


def words(text: str) -> set[str]:
    return set(_WORD.findall(text.casefold()))


def word_overlap(a: str, b: str) -> float:
    """Jaccard similarity of the two texts' word sets (1.0 for two texts without words)."""
    wa, wb = words(a), words(b)
    if not wa and not wb:
        return 1.0
    return len(wa & wb) / len(wa | wb)


def content_hash(text: str) -> str:
    return hashlib.sha256(normalized(text).encode()).hexdigest()[:40]


def group_duplicates(docs: list[PassageDoc], policy: DedupPolicy) -> list[tuple[list[PassageDoc], float]]:
    """Groups of passages (each with a vector) that are duplicates of one another, oldest first, with
    the lowest cosine inside each group; biggest groups first."""
    docs = [d for d in docs if d.vector]
    if len(docs) < 2:
        return []
    mat = np.asarray([d.vector for d in docs], dtype=np.float32)
    mat /= np.maximum(np.linalg.norm(mat, axis=1, keepdims=True), 1e-12)
    sims = mat @ mat.T
    parent = list(range(len(docs)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    rows, cols = np.nonzero(np.triu(sims >= policy.min_similarity, k=1))
    exact: dict[str, int] = {}
    pairs = list(zip(rows.tolist(), cols.tolist(), strict=True))
    for i, d in enumerate(docs):  # equal texts are duplicates whatever their vectors say
        j = exact.setdefault(normalized(d.text), i)
        if j != i:
            pairs.append((j, i))
    for i, j in pairs:
        if policy.duplicates(docs[i].text, docs[j].text, float(sims[i, j])):
            parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(docs)):
        groups.setdefault(root(i), []).append(i)
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        low = min(float(sims[i, j]) for i in members for j in members if i < j)
        out.append((sorted((docs[i] for i in members), key=lambda d: (d.created_at, d.id)), low))
    out.sort(key=lambda g: (-len(g[0]), g[0][0].created_at))
    return out


@dataclass(slots=True)
class Claim:
    """The outcome of claiming a text: `owned` (insert it, then `done`), or the owner's passage id."""

    key: str
    passage_id: str
    owned: bool
    revision: int = 0


class ClaimBook:
    """Atomic claims of passage texts in the KV bucket `mnemo_passage_claims` (see the module docstring)."""

    def __init__(self, kv: KeyValue, wait: float = CLAIM_WAIT) -> None:
        self.kv = kv
        self.wait = wait

    @staticmethod
    def _value(passage_id: str, done: bool) -> bytes:
        return json.dumps({"id": passage_id, "at": int(time.time() * 1000), "done": done}).encode()

    async def claim(self, tenant_id: str, agent_id: str, text: str, passage_id: str,
                    exists: Callable[[str], Awaitable[bool]]) -> Claim:
        """Own the text for `passage_id`, or learn whose passage it already is (`exists(id)`: the
        passage is still stored)."""
        key = f"{tenant_id}.{agent_id}.{content_hash(text)}"
        deadline = time.monotonic() + self.wait + 5.0
        while True:
            try:
                return Claim(key, passage_id, True, await self.kv.create(key, self._value(passage_id, False)))
            except KeyWrongLastSequenceError:
                pass
            try:
                entry = await self.kv.get(key)
            except KeyNotFoundError as err:  # deleted meanwhile (a delete marker): write over it
                last = err.entry.revision if err.entry is not None and err.entry.revision else 0
                taken = await self._take(key, passage_id, last)
                if taken is not None:
                    return taken
                continue
            held = json.loads(entry.value or b"{}")
            holder, revision = str(held.get("id", "")), entry.revision or 0
            if holder == passage_id:  # our own claim (a retried insert)
                return Claim(key, passage_id, True, revision)
            stale = time.time() * 1000 - int(held.get("at", 0)) > self.wait * 1000
            if held.get("done"):
                if await exists(holder):
                    return Claim(key, holder, False)
                stale = True  # its passage is gone (deleted, expired): the text is free again
            if stale or time.monotonic() > deadline:
                taken = await self._take(key, passage_id, revision)
                if taken is not None:
                    return taken
                continue
            await asyncio.sleep(CLAIM_POLL)  # the owner is inserting it right now

    async def _take(self, key: str, passage_id: str, last: int) -> Claim | None:
        try:
            return Claim(key, passage_id, True, await self.kv.update(key, self._value(passage_id, False), last=last))
        except KeyWrongLastSequenceError:
            return None

    async def done(self, claim: Claim) -> None:
        """The owner's passage is stored: waiting claimants may answer with its id."""
        try:
            await self.kv.update(claim.key, self._value(claim.passage_id, True), last=claim.revision)
        except KeyWrongLastSequenceError:
            pass  # taken over meanwhile (we were too slow): the new owner answers for the text

    async def release(self, claim: Claim) -> None:
        """The owner failed to store its passage: free the text at once."""
        try:
            await self.kv.delete(claim.key, last=claim.revision)
        except (APIError, KeyNotFoundError):
            pass  # taken over meanwhile
