"""Text handling shared by both backends: query terms, stop words, date words, context and fusion.

The same search serves a question asked in the words of the conversation and one asked months later
in other words, so a query is split into content terms (stop words dropped, any term may match: OR)
for BM25, while the vector side carries meaning; `fuse` combines both (see its docstring).

LoCoMo evidence recall@10 of the embedded backend (bench/locomo_recall.py --direct) by design choice,
for the record: BM25 on single turns 0.68; BM25 with neighbouring turns and dates 0.78; + vectors by
RRF 0.74-0.79 (depending on the vector weight); + vectors by score fusion scaled by the best hit 0.80;
scaled by the query's IDF sum 0.81. The weight of meaning (MEANING_WEIGHT, the cosine's share of the
score) is 0.6: LoCoMo barely moves between 0.5 and 0.6 (R@10 0.811 / 0.807), while facts asked back in
other words (bench/paraphrase_recall.py, 10k messages) are found twice as often (0.20 / 0.41); past 0.6
LoCoMo falls (0.7: 0.790, 0.8: 0.757). Variants tried, with their figures: docs/search.md.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Sequence
from datetime import UTC, datetime
from typing import TypeVar

K = TypeVar("K", bound=Hashable)

# English function words: they match nearly every message, so they only add noise to BM25.
STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being below
between both but by can could did do does doing down during each few for from further had has have
having he her here hers herself him himself his how i if in into is it its itself just me more most my
myself no nor not now of off on once only or other our ours ourselves out over own same she should so
some such than that the their theirs them themselves then there these they this those through to too
under until up very was we were what when where which while who whom why will with would you your
yours yourself yourselves s t don doesn didn isn wasn aren weren won wouldn shouldn couldn ll re ve d m
o y ever also get got much many yes oh ok okay hey hi really well like would shall might must may
""".split())

_WORD = re.compile(r"[^\W_]+", re.UNICODE)

RRF_K = 60


def terms(text: str) -> list[str]:
    """Lower-cased words of `text` (letters and digits), in order."""
    return [w.lower() for w in _WORD.findall(text)]


def query_terms(query: str) -> list[str]:
    """Distinct content terms of a query; stop words are dropped unless nothing else is left."""
    words = terms(query)
    content = [w for w in words if w not in STOP_WORDS]
    chosen = content or words
    return list(dict.fromkeys(chosen))


def fts5_query(query: str) -> str | None:
    """An SQLite FTS5 MATCH expression: any content term (OR), each quoted. None if no terms."""
    chosen = query_terms(query)
    if not chosen:
        return None
    return " OR ".join(f'"{t}"' for t in chosen)


def date_words(when: datetime) -> str:
    """Words for a message's date, indexed with it ("Monday 8 May 2023") so dates in queries match."""
    return f"{when.strftime('%A')} {when.day} {when.strftime('%B')} {when.year}"


def recall_index_text(text: str, context: str, when: datetime) -> str:
    """The text a recall message is embedded with: the message, its neighbouring turns, its date.

    Callers that compute recall vectors (the memory service's indexer) should embed this, not the bare
    message, so that the vector carries the same context the words are indexed with.
    """
    parts = [text]
    if context:
        parts.append(context)
    parts.append(date_words(when))
    return "\n".join(parts)


def neighbour_context(texts: Sequence[str], index: int, before: int = 1, after: int = 1) -> str:
    """The texts around position `index` of a time-ordered conversation, joined (no self)."""
    lo = max(0, index - before)
    hi = min(len(texts), index + after + 1)
    return "\n".join(texts[i] for i in range(lo, hi) if i != index)


def utc_epoch(when: datetime) -> float:
    """Seconds since the epoch; naive datetimes are taken as UTC."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def rrf(ranked_lists: Sequence[Sequence[K]], k: int = RRF_K,
        weights: Sequence[float] | None = None) -> list[tuple[K, float]]:
    """Reciprocal rank fusion: score(d) = sum over lists of weight / (k + rank), best first."""
    scores: dict[K, float] = {}
    for li, ranked in enumerate(ranked_lists):
        w = weights[li] if weights else 1.0
        for rank, key in enumerate(ranked, start=1):
            scores[key] = scores.get(key, 0.0) + w / (k + rank)
    return sorted(scores.items(), key=lambda kv: kv[1], reverse=True)


# Hybrid fusion: "rrf" (ranks only) or "convex" (w * cosine + (1 - w) * BM25 / ceiling).
FUSION = "convex"
# w above, by default (Settings.search_meaning_weight, MNEMO_SEARCH_MEANING_WEIGHT, overrides it).
MEANING_WEIGHT = 0.6
# Vector weight relative to BM25 in the fusion.
VECTOR_WEIGHT = 1.0
# Cosine similarity a vector hit needs to count as a match without any matching word.
DEFAULT_MIN_SIMILARITY = 0.3
# BM25 weights of a recall message's fields: the message itself, its neighbouring turns, its date words.
MESSAGE_WEIGHTS = (1.0, 0.4, 0.4)


def bm25_idf(total_docs: int, docs_with_term: int) -> float:
    """The IDF of one term as SQLite FTS5 (and Lucene, up to a constant) compute it."""
    return max(1e-6, math.log((total_docs - docs_with_term + 0.5) / (docs_with_term + 0.5)))


def fuse(word_hits: Sequence[tuple[K, float]], vector_hits: Sequence[tuple[K, float]],
         cosines: dict[K, float] | None = None, vector_weight: float = 1.0,
         word_ceiling: float | None = None, alpha: float = MEANING_WEIGHT) -> list[tuple[K, float]]:
    """Fuse a BM25 list (key, score, higher better) and a vector list (key, cosine), best first.

    `cosines` may give the cosine of word hits that are not in the vector list (convex fusion uses it).
    `word_ceiling` is the BM25 score of a document matching every query term (the sum of their IDFs):
    BM25 scores are scaled by it, so a document matching one common query word out of several is not
    taken for a perfect match (without it, scores are scaled by the best hit's). `alpha` is the weight
    of the cosine (meaning) in the score, 1 - `alpha` that of the scaled BM25 (words).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"meaning weight {alpha} is not within [0, 1]")
    if FUSION == "rrf" or not vector_hits:
        return rrf([[k for k, _ in word_hits], [k for k, _ in vector_hits]], weights=[1.0, vector_weight])
    best = word_ceiling or max((s for _, s in word_hits), default=0.0) or 1.0
    cos = dict(cosines or {})
    cos.update(vector_hits)
    words = {k: min(1.0, s / best) for k, s in word_hits}
    keys = list(dict.fromkeys([*words, *cos]))
    scored = [(k, alpha * max(cos.get(k, 0.0), 0.0) + (1 - alpha) * words.get(k, 0.0)) for k in keys]
    return sorted(scored, key=lambda kv: kv[1], reverse=True)
