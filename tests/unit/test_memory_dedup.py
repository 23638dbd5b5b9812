"""Archival deduplication rules without I/O: what counts as a duplicate, and duplicate groups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from mnemo.common.config import Settings
from mnemo.common.errors import InvalidArgument
from mnemo.memory.dedup import DedupPolicy, content_hash, group_duplicates, normalized, word_overlap
from mnemo.memory.search.base import PassageDoc

POLICY = DedupPolicy(True, 0.9, 0.6)


def test_policy_follows_settings_and_the_request_switch() -> None:
    settings = Settings(archival_dedup=False, archival_dedup_similarity=0.8, archival_dedup_word_overlap=0.5)
    assert DedupPolicy.of(settings) == DedupPolicy(False, 0.8, 0.5)
    assert DedupPolicy.of(settings, "on").enabled and not DedupPolicy.of(Settings(), "off").enabled
    assert DedupPolicy.of(Settings()).enabled   # on by default
    with pytest.raises(InvalidArgument):
        DedupPolicy.of(settings, "sometimes")


def test_equal_texts_once_normalised_are_duplicates_whatever_the_vectors() -> None:
    assert normalized("  The User's  dog, Biscuit!") == "the user s dog biscuit"
    assert content_hash("Biscuit is a beagle.") == content_hash("biscuit IS a beagle")
    assert POLICY.duplicates("Biscuit is a beagle.", "biscuit is a beagle", cosine=0.0)


@pytest.mark.parametrize(("a", "b", "cosine", "same"), [
    ("The user's dog is a beagle called Biscuit.", "The user's dog is a beagle named Biscuit.", 0.97, True),
    ("The user's dog is a beagle called Biscuit.", "The user's dog is a beagle named Biscuit.", 0.85, False),
    ("The user is vegan.", "The user is not vegan.", 0.97, False),               # a negation differs
    ("The user can swim well.", "The user can't swim well.", 0.97, False),
    ("Hotel room 1207 on the fifth floor.", "Hotel room 1208 on the fifth floor.", 0.99, False),  # numbers
    ("The meeting moved to Friday at the office.", "Lunch with Ana and Joe near the park.", 0.99, False),  # words
])
def test_near_duplicates_need_meaning_words_numbers_and_negations(a: str, b: str, cosine: float,
                                                                  same: bool) -> None:
    assert POLICY.duplicates(a, b, cosine) is same


def test_word_overlap_is_jaccard_of_word_sets() -> None:
    assert word_overlap("a b c", "b c d") == pytest.approx(0.5)
    assert word_overlap("", "...") == 1.0


def test_duplicate_groups_are_oldest_first_and_biggest_first() -> None:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)

    def doc(pid: str, text: str, vec: list[float], minutes: int) -> PassageDoc:
        return PassageDoc(id=pid, tenant_id="t", agent_id="a", text=text, created_at=t0 + timedelta(minutes=minutes),
                          vector=vec)
    docs = [doc("p3", "the cat is called miso", [1.0, 0.01, 0.0], 3),
            doc("p1", "The cat is called Miso.", [1.0, 0.0, 0.0], 1),
            doc("p2", "The cat is named Miso.", [0.99, 0.05, 0.0], 2),
            doc("p4", "Trains leave at nine.", [0.0, 1.0, 0.0], 0),
            doc("p5", "Trains leave at nine!", [0.0, 0.0, 1.0], 5),   # equal text, unrelated vector
            doc("p6", "Unrelated note.", [0.5, 0.5, 0.7], 4)]
    groups = group_duplicates(docs, DedupPolicy(True, 0.95, 0.5))
    assert [[d.id for d in g] for g, _ in groups] == [["p1", "p2", "p3"], ["p4", "p5"]]
    assert 0.95 <= groups[0][1] < 1.0
    assert group_duplicates(docs[:1], POLICY) == []
