"""Chaos fixtures: the size, a scripted model that can fail on demand, `mnemo up` stacks shared by a
module's faults, and the chaos table (printed at the end, written as text and JSON)."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chaos.harness import ChaosStack, Size, chaos_size
from tests.chaos.verdict import Verdict, table
from tests.scripted_llm import ScriptedLLM

_ROWS: list[dict[str, Any]] = []
_FILES: list[Path] = []


class ChaosReport:
    """Collects each fault's verdict; rewrites chaos-table.txt and chaos-table.json after each."""

    def __init__(self, directory: Path, size: Size) -> None:
        self.dir = directory
        self.size = size

    def add(self, verdict: Verdict) -> None:
        _ROWS.append({**verdict.as_dict(), "size": self.size.name})
        (self.dir / "chaos-table.json").write_text(json.dumps(_ROWS, indent=2))
        (self.dir / "chaos-table.txt").write_text(table(_ROWS) + "\n")
        if not _FILES:
            _FILES.append(self.dir / "chaos-table.json")
        print(f"\n{table(_ROWS[-1:])}")


@pytest.fixture(scope="session")
def size() -> Size:
    return chaos_size()


@pytest.fixture(scope="session")
def chaos_report(tmp_path_factory: pytest.TempPathFactory, size: Size) -> ChaosReport:
    """The table goes to the run's temporary folder, or to MNEMO_CHAOS_REPORT (a folder) to be collected."""
    wanted = os.environ.get("MNEMO_CHAOS_REPORT")
    directory = Path(wanted) if wanted else tmp_path_factory.mktemp("chaos-report")
    directory.mkdir(parents=True, exist_ok=True)
    return ChaosReport(directory, size)


@pytest.fixture(scope="module")
def chaos_model() -> Iterator[ScriptedLLM]:
    """The scripted model of a module's stack: default answers, a little latency so that turns are
    in flight when a process dies, faults set by the tests."""
    model = ScriptedLLM().start()
    model.record = False
    model.latency = 0.1
    yield model
    model.stop()


def start_stack(tmp: Path, model: ScriptedLLM, **kwargs: Any) -> ChaosStack:
    """A started stack. A start that fails is tried once more: on a loaded machine grpc's C core has
    aborted a process during start-up (`wakeup_fd_->Wakeup().ok()`), which `mnemo up` does not
    restart; the faults are what these tests are about."""
    try:
        return ChaosStack(tmp / "home", llm_base_url=model.base_url, **kwargs).start()
    except RuntimeError as exc:
        print(f"\nstack start failed, trying once more: {str(exc)[-600:]}")
        return ChaosStack(tmp / "home-2", llm_base_url=model.base_url, **kwargs).start()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _ROWS:
        terminalreporter.write_sep("=", "chaos table")
        terminalreporter.write_line(table(_ROWS))
        if _FILES:
            terminalreporter.write_line(f"(also in {_FILES[0]} and chaos-table.txt beside it)")
