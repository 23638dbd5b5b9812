"""Mnemo on a 3-node NATS cluster under faults: `mnemo up` with MNEMO_NATS_URL listing the three
servers and MNEMO_JETSTREAM_REPLICAS=3, agents sending turns over REST (a failed request retried
with the same Idempotency-Key), one node SIGKILLed and brought back, then the JetStream meta leader.

After each fault: every turn a client saw done (or retried until done) is in its agent's history
exactly once, none twice; no call lacks its return; recall catches up; throughput recovers. A table
row per fault is printed (`-s` shows it) and written to cluster-table.txt in the report folder
($MNEMO_CHAOS_REPORT when set, as `make test-chaos` sets it).
MNEMO_CHAOS_SIZE=full runs more agents and longer faults.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.chaos.cluster import (
    Audit,
    FaultRow,
    NatsCluster,
    NatsNode,
    TurnLoad,
    audit,
    indexed_history,
    seconds_to_recover,
    stream_replicas,
    table,
    wait_for,
)
from tests.chaos.conftest import ChaosReport
from tests.e2e.stack import Stack
from tests.scripted_llm import ScriptedLLM

pytestmark = pytest.mark.chaos

FULL = os.environ.get("MNEMO_CHAOS_SIZE") == "full"
AGENTS = 24 if FULL else 6
WARM_TURNS = 200 if FULL else 30        # turns completed before the fault (the rate before it)
DOWN_TURNS = 300 if FULL else 30        # turns that must complete while the node is down
AFTER_TURNS = 200 if FULL else 30       # turns that must complete once throughput is back


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    c = NatsCluster(tmp_path_factory.mktemp("cluster")).start()
    yield c
    c.stop()


@pytest.fixture(scope="module")
def cluster_stack(tmp_path_factory: pytest.TempPathFactory, cluster: NatsCluster,
                  scripted_llm_server: ScriptedLLM) -> Iterator[Stack]:
    s = Stack(tmp_path_factory.mktemp("cluster-stack") / "home", llm_base_url=scripted_llm_server.base_url,
              extra_env={"MNEMO_NATS_URL": cluster.url, "MNEMO_JETSTREAM_REPLICAS": "3"}).start()
    yield s
    s.stop()


async def test_every_stream_and_bucket_has_three_replicas(cluster: NatsCluster, cluster_stack: Stack) -> None:
    """Regression: the idempotency bucket and the USAGE stream were created with one replica, so a
    node's loss lost them; and `mnemo up` refused a MNEMO_NATS_URL listing several servers."""
    async with httpx.AsyncClient(base_url=cluster_stack.base_url,
                                 headers={"Authorization": f"Bearer {cluster_stack.api_key}"}) as client:
        agent = (await client.post("/v1/agents", json={"name": "replicas"})).json()["id"]
        r = await client.post(f"/v1/agents/{agent}/messages", json={"message": "hi"},
                              headers={"Idempotency-Key": "replicas-1"}, timeout=30)
        assert r.status_code == 200
    replicas = await stream_replicas(cluster.url)
    assert {"TURNS", "EVENTS", "MESSAGES", "USAGE", "CONSOLIDATION", "KV_mnemo_idempotency",
            "KV_mnemo_agents", "KV_mnemo_leases"} <= set(replicas)
    assert {name: n for name, n in replicas.items() if n != 3} == {}


async def _new_agents(stack: Stack, prefix: str) -> list[str]:
    async with httpx.AsyncClient(base_url=stack.base_url,
                                 headers={"Authorization": f"Bearer {stack.api_key}"}) as client:
        return [(await client.post("/v1/agents", json={"name": f"{prefix}-{i}"})).json()["id"]
                for i in range(AGENTS)]


async def _fault(name: str, cluster: NatsCluster, stack: Stack, agents: list[str],
                 victim: NatsNode) -> tuple[FaultRow, Audit]:
    load = TurnLoad(stack.base_url, stack.api_key, agents)
    await load.start()
    started = time.monotonic()
    await wait_for(lambda: len(load.stats.completed) >= 2 * WARM_TURNS and time.monotonic() - started >= 3.0,
                   120, "warm-up turns")
    # The rate before the fault, over the same 2 s window as the rate it must come back to (a burst of
    # a few turns made a baseline twice the sustained rate).
    fault_at = time.monotonic()
    baseline = load.stats.rate(fault_at - 2.0, fault_at)
    cluster.kill(victim)
    await wait_for(lambda: len(load.stats.completed) >= 2 * WARM_TURNS + DOWN_TURNS, 120,
                   f"turns with {victim.name} down")
    cluster.start_node(victim)
    await asyncio.to_thread(cluster.wait_ready, 60)
    cluster_back = time.monotonic() - fault_at

    def recovered() -> bool:
        now = time.monotonic()
        return load.stats.rate(now - 2.0, now) >= 0.5 * baseline

    # Throughput recovers: half the rate before the fault or more over 2 s, within 90 s of the restart.
    await wait_for(recovered, 90, f"throughput back to half of {baseline:.1f} turns/s")
    now = time.monotonic()
    rate_after = load.stats.rate(now - 2.0, now)
    mark = len(load.stats.completed)
    await wait_for(lambda: len(load.stats.completed) >= mark + AFTER_TURNS, 120, f"turns after {victim.name} is back")
    end = time.monotonic()
    await load.stop()
    recovered_s = seconds_to_recover(load.stats.completed, fault_at, end, baseline)
    caught_up = await indexed_history(stack.base_url, stack.api_key, agents)
    result = await audit(stack.base_url, stack.api_key, load)
    completed = sum(len(log.done) for log in load.logs.values())
    return FaultRow(name, load.sent, completed, len(result.lost), len(result.duplicated), result.orphaned_calls,
                    cluster_back, recovered_s, caught_up, baseline, rate_after), result


async def test_turns_survive_a_node_and_the_meta_leader_killed(cluster: NatsCluster, cluster_stack: Stack,
                                                                chaos_report: ChaosReport) -> None:
    rows: list[FaultRow] = []
    leader = cluster.meta_leader()
    assert leader is not None
    follower = next(n for n in cluster.nodes if n is not leader)
    for name, victim in (("SIGKILL a node", lambda: follower), ("SIGKILL the meta leader", cluster.meta_leader)):
        node = victim()
        assert node is not None
        # New conversations for each fault: a turn costs more as its agent's queue grows (the whole
        # state is written and replicated each step), so the first fault's agents are slower by now.
        agents = await _new_agents(cluster_stack, f"chaos-{len(rows)}")
        row, result = await _fault(f"{name} ({node.name})", cluster, cluster_stack, agents, node)
        rows.append(row)
        print("\n" + table(rows))
        assert result.lost == [], f"{name}: turns lost {result.lost[:5]}"
        assert result.duplicated == [], f"{name}: turns run twice {result.duplicated[:5]}"
        assert result.orphaned_calls == 0
        assert row.completed == row.sent, f"{name}: {row.sent - row.completed} turns never completed"
    # Beside the single-node table, in the report folder (MNEMO_CHAOS_REPORT, or the run's tmp folder).
    (chaos_report.dir / "cluster-table.txt").write_text(table(rows) + "\n")

