"""Pure ranking logic of the search backends: query terms, fusion, the exact vector index."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from mnemo.memory.search.base import DimensionMismatch
from mnemo.memory.search.text import (
    bm25_idf,
    date_words,
    fts5_query,
    fuse,
    neighbour_context,
    query_terms,
    recall_index_text,
    rrf,
)
from mnemo.memory.search.vectors import VectorIndex, normalize


def test_query_terms_drop_stop_words_unless_nothing_is_left() -> None:
    assert query_terms("What's my dog called?") == ["dog", "called"]
    assert query_terms("what is it") == ["what", "is", "it"]
    assert query_terms("Biscuit biscuit BISCUIT") == ["biscuit"]
    assert query_terms("?!") == []


def test_fts5_query_quotes_every_term() -> None:
    assert fts5_query('dog "OR" NEAR(x') == '"dog" OR "near" OR "x"'
    assert fts5_query("...") is None


def test_date_words_and_index_text() -> None:
    when = datetime(2023, 5, 8, 13, 56, tzinfo=UTC)
    assert date_words(when) == "Monday 8 May 2023"
    assert recall_index_text("hi", "before\nafter", when) == "hi\nbefore\nafter\nMonday 8 May 2023"
    assert neighbour_context(["a", "b", "c", "d"], 0) == "b"
    assert neighbour_context(["a", "b", "c", "d"], 2) == "b\nd"


def test_rrf_prefers_documents_ranked_well_in_both_lists() -> None:
    fused = rrf([["a", "b", "c"], ["d", "b", "e"]])
    assert fused[0][0] == "b" and {k for k, _ in fused} == {"a", "b", "c", "d", "e"}


def test_fuse_lets_meaning_beat_a_weak_word_match() -> None:
    # "x" matches one common query word out of two; "y" matches no word but is close in meaning
    fused = fuse([("x", 1.0)], [("y", 0.6), ("x", 0.05)], word_ceiling=4.0)
    assert [k for k, _ in fused] == ["y", "x"]
    # a document matching every query word and close in meaning wins over both
    fused = fuse([("z", 4.0), ("x", 1.0)], [("y", 0.6), ("z", 0.5)], word_ceiling=4.0)
    assert fused[0][0] == "z"


def test_fuse_default_weight_lets_a_paraphrase_beat_a_half_matching_distractor() -> None:
    # The paraphrase benchmark's case: the fact ("we call our beagle Biscuit") shares no word with
    # "what is my dog's name?" and is closer in meaning (0.75) than a distractor matching "dog", one
    # of the two query terms (cosine 0.35). At the old equal weight (0.5) the distractor won.
    words, vectors = [("distractor", 1.0)], [("fact", 0.75), ("distractor", 0.35)]
    assert fuse(words, vectors, word_ceiling=2.0, alpha=0.5)[0][0] == "distractor"
    assert fuse(words, vectors, word_ceiling=2.0)[0][0] == "fact"
    # ... while a message holding every query word still wins over a mere paraphrase
    assert fuse([("exact", 2.0)], [("fact", 0.75), ("exact", 0.3)], word_ceiling=2.0)[0][0] == "exact"


def test_fuse_meaning_weight_is_the_cosine_share_of_the_score() -> None:
    fused = dict(fuse([("a", 1.0)], [("a", 0.5), ("b", 0.8)], word_ceiling=2.0, alpha=0.6))
    assert fused["a"] == pytest.approx(0.6 * 0.5 + 0.4 * 0.5)
    assert fused["b"] == pytest.approx(0.6 * 0.8)
    only_words = dict(fuse([("a", 1.0)], [("b", 0.8)], word_ceiling=2.0, alpha=0.0))
    assert only_words["a"] == pytest.approx(0.5) and only_words["b"] == 0.0
    with pytest.raises(ValueError):
        fuse([("a", 1.0)], [("b", 0.8)], alpha=1.5)


def test_bm25_idf_is_positive_and_falls_with_frequency() -> None:
    assert bm25_idf(1000, 1) > bm25_idf(1000, 100) > 0
    assert bm25_idf(10, 10) > 0


def test_vector_index_exact_top_k_with_filters_and_removal() -> None:
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((500, 16)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    index = VectorIndex(16, capacity=4)
    index.upsert(list(range(500)), vecs, [float(i) for i in range(500)], [i % 2 for i in range(500)])
    q = normalize(vecs[42])
    keys, scores, above = index.search(q, 5, min_score=0.5)
    assert keys[0] == 42 and scores[0] == pytest.approx(1.0, abs=1e-5)
    assert scores == sorted(scores, reverse=True) and set(keys) <= set(above)
    expected = set(np.flatnonzero(vecs @ q >= 0.5).tolist())
    assert set(above) == expected
    keys, _, _ = index.search(q, 5, start=100.0, end=200.0, label=1)
    assert all(100 <= k <= 200 and k % 2 == 1 for k in keys)
    index.remove([42, 7, 9999])
    assert len(index) == 498
    keys, _, _ = index.search(q, 3)
    assert 42 not in keys
    keys, _, _ = index.search(q, 500, allowed=np.array([1, 3, 5]))
    assert sorted(keys) == [1, 3, 5]
    with pytest.raises(DimensionMismatch):
        normalize([1.0, 2.0], 16)


async def test_meaning_weight_setting_reaches_both_backends(tmp_path) -> None:
    from pydantic import ValidationError

    from mnemo.common.config import Settings
    from mnemo.memory.search import create_backend

    embedded = create_backend(Settings(home=tmp_path, search_meaning_weight=0.3))
    assert embedded.meaning_weight == 0.3  # type: ignore[attr-defined]
    elastic = create_backend(Settings(home=tmp_path, search_backend="elasticsearch", search_meaning_weight=0.7))
    assert elastic.meaning_weight == 0.7  # type: ignore[attr-defined]
    await elastic.es.close()  # type: ignore[attr-defined]  (never connected)
    with pytest.raises(ValidationError):
        Settings(home=tmp_path, search_meaning_weight=1.5)
