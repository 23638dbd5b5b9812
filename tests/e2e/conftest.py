"""End-to-end fixtures: the whole stack as processes (`mnemo up`) against the scripted model."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.stack import Stack
from tests.scripted_llm import ScriptedLLM


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory, scripted_llm_server: ScriptedLLM) -> Iterator[Stack]:
    """One `mnemo up` for the e2e session, answering through the scripted model."""
    s = Stack(tmp_path_factory.mktemp("e2e") / "home", llm_base_url=scripted_llm_server.base_url).start()
    yield s
    s.stop()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """Each phase's report on the item (`item.rep_call`), for fixtures that keep artifacts on failure."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
