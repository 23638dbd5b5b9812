"""The service processes' collector settings once start-up is over (common/runner.settle_heap)."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from mnemo.common.config import Settings
from mnemo.common.runner import settle_heap


@pytest.fixture
def collector() -> Iterator[None]:
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_start_up_objects_leave_the_collected_generations(collector: None) -> None:
    built_at_start = [[i] for i in range(1000)]  # containers the collector tracks
    gc.unfreeze()
    settle_heap(12_345)
    assert gc.get_freeze_count() >= len(built_at_start)
    assert gc.get_threshold()[0] == 12_345
    assert gc.get_count()[0] < 100  # collected just before the freeze


def test_zero_keeps_pythons_young_threshold(collector: None) -> None:
    before = gc.get_threshold()
    settle_heap(0)
    assert gc.get_threshold() == before


def test_the_threshold_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Settings().gc_gen0_threshold == 10_000
    monkeypatch.setenv("MNEMO_GC_GEN0_THRESHOLD", "0")
    assert Settings().gc_gen0_threshold == 0
    monkeypatch.setenv("MNEMO_GC_GEN0_THRESHOLD", "-1")
    with pytest.raises(ValueError):
        Settings()
