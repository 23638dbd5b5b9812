"""Faults of a single-node stack under steady load, one at a time: each kill of a service process,
a NATS restart, a misbehaving model endpoint, an unreachable search backend. After each, every turn
sent ran exactly once, no function call lacks its return, recall caught up and the throughput came
back (tests/chaos/harness.py). Size: MNEMO_CHAOS_SIZE (small | full).

Each class shares one stack among its faults (class-scoped, so one stack runs at a time)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from tests.chaos.conftest import ChaosReport, start_stack
from tests.chaos.harness import ChaosStack, Inject, Size, run_fault
from tests.chaos.verdict import Verdict
from tests.fixtures_search import NoidaElasticsearch
from tests.scripted_llm import ScriptedLLM

pytestmark = pytest.mark.chaos


def check(report: ChaosReport, verdict: Verdict) -> None:
    report.add(verdict)
    assert verdict.ok, verdict.problems


def kill(stack: ChaosStack, name: str) -> Inject:
    async def inject() -> None:
        old = stack.kill(name)
        # The load goes on meanwhile; the fault is over once the supervisor's restart is healthy.
        await stack.wait_replaced(name, old)
    return inject


@pytest.fixture(scope="class")
def split_stack(tmp_path_factory: pytest.TempPathFactory, chaos_model: ScriptedLLM) -> Iterator[ChaosStack]:
    stack = start_stack(tmp_path_factory.mktemp("chaos-split"), chaos_model, layout="split", orchestrators=2)
    yield stack
    assert stack.stop() == 0, stack.output()[-4000:]


class TestSplitTwoReplicas:
    """Split layout (a process per service), two orchestrator replicas, the embedded search backend."""

    @pytest.mark.parametrize("victim", ["orchestrator-1", "memory", "llm-proxy", "gateway"])
    async def test_killed_service(self, split_stack: ChaosStack, size: Size, chaos_report: ChaosReport,
                                  victim: str) -> None:
        label = "orchestrator 1 of 2" if victim == "orchestrator-1" else victim
        check(chaos_report, await run_fault(split_stack, size, f"SIGKILL {label}", kill(split_stack, victim)))

    async def test_nats_restart(self, split_stack: ChaosStack, size: Size, chaos_report: ChaosReport) -> None:
        check(chaos_report, await run_fault(split_stack, size, "SIGKILL nats-server", kill(split_stack, "nats")))

    @pytest.mark.parametrize("mode", ["500", "429", "hang", "cut"])
    async def test_model_endpoint(self, split_stack: ChaosStack, chaos_model: ScriptedLLM, size: Size,
                                  chaos_report: ChaosReport, mode: str) -> None:
        async def inject() -> None:
            chaos_model.set_fault(mode, size.fault)

        async def heal() -> None:
            chaos_model.clear_fault()

        names = {"500": "model 500s", "429": "model 429 + Retry-After", "hang": "model hangs past timeout",
                 "cut": "model closes mid-stream"}
        before = chaos_model.faulted
        check(chaos_report, await run_fault(split_stack, size, names[mode], inject, heal, timed=True))
        assert chaos_model.faulted > before, "the fault never reached the model endpoint"


@pytest.fixture(scope="class")
def noida(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NoidaElasticsearch]:
    server = NoidaElasticsearch(tmp_path_factory.mktemp("chaos-noida")).start()
    yield server
    server.stop()


@pytest.fixture(scope="class")
def es_stack(tmp_path_factory: pytest.TempPathFactory, chaos_model: ScriptedLLM,
             noida: NoidaElasticsearch) -> Iterator[ChaosStack]:
    stack = start_stack(tmp_path_factory.mktemp("chaos-es"), chaos_model, layout="split", orchestrators=1,
                        extra_env={"MNEMO_SEARCH_BACKEND": "elasticsearch", "MNEMO_ELASTICSEARCH_URL": noida.url})
    yield stack
    assert stack.stop() == 0, stack.output()[-4000:]


class TestSplitOneReplicaElasticsearch:
    """Split layout, one orchestrator, the Elasticsearch backend (noida-db)."""

    async def test_killed_only_orchestrator(self, es_stack: ChaosStack, size: Size,
                                            chaos_report: ChaosReport) -> None:
        check(chaos_report, await run_fault(es_stack, size, "SIGKILL the only orchestrator",
                                            kill(es_stack, "orchestrator")))

    async def test_search_backend_down(self, es_stack: ChaosStack, noida: NoidaElasticsearch, size: Size,
                                       chaos_report: ChaosReport) -> None:
        async def inject() -> None:
            await asyncio.to_thread(noida.stop)

        async def heal() -> None:
            await asyncio.to_thread(noida.start)

        check(chaos_report, await run_fault(es_stack, size, "search backend down", inject, heal, timed=True))


@pytest.fixture(scope="class")
def combined_stack(tmp_path_factory: pytest.TempPathFactory, chaos_model: ScriptedLLM) -> Iterator[ChaosStack]:
    stack = start_stack(tmp_path_factory.mktemp("chaos-combined"), chaos_model, layout="combined")
    yield stack
    assert stack.stop() == 0, stack.output()[-4000:]


class TestCombined:
    """The default layout: the four services in one process."""

    async def test_killed_combined_process(self, combined_stack: ChaosStack, size: Size,
                                           chaos_report: ChaosReport) -> None:
        check(chaos_report, await run_fault(combined_stack, size, "SIGKILL combined process",
                                            kill(combined_stack, "services")))
