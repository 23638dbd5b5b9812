"""Mnemo at scale: many agents, a model with real latency, 1 and 3 orchestrator replicas.

    .venv/bin/python bench/scale.py [--agents 1000] [--turns 5] [--rate 250] [--replicas 1,3]
        [--latency-ms 200] [--idle-agents 10000] [--recall-sizes 100,10000,100000] [--skip-idle] [--skip-recall]

The stack is `mnemo up` (processes, the default layout, local embedder for recall indexing);
the model is the scripted OpenAI-compatible server (tests/scripted_llm.py) in its own process,
answering every call after --latency-ms (--remote-embeddings: it embeds recall too, hash vectors).
The provider's concurrency cap is raised to 512 through MNEMO_PROVIDERS_FILE (the default cap, 16 calls
at once, allows only 80 calls/s at 200 ms).

(a) Per replica count: --agents agents, each sending --turns turns one after another (the next when
    the last has ended, and not before its slot in an open-loop schedule of --rate turns/s over all
    agents). Sustained turns/s (turns ended per second from 10 % of the schedule to its end; the
    whole run's rate, whose wall time ends one turn latency after the schedule, beside it), p50 /
    p95 / p99 turn latency, errors, the TURNS consumer's pending and unacknowledged turns (max
    during the run), RSS and CPU ms per turn of every process, the turns each orchestrator replica
    ran (its `mnemo_turns_total` on its own metrics port), and whether every agent's recall holds its
    turns once each, in the order sent.
(b) Idle RSS of the stack once --idle-agents agents exist (1 replica).
(c) Turn latency for agents whose recall holds each of --recall-sizes messages, imported through
    the public bulk path `POST /v1/agents/{id}/recall` (10,000 messages a request), after the
    recall indexer caught up.
Targets (2 cores): >= 250 turns/s, 0 errors, p99 <= 3 x latency, replicas within 20 % of an even
share, order kept; idle RSS <= 1.5 GiB with 10,000 agents; latency flat within 20 % over recall sizes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import nats

from bench.turns import cpu_seconds, cpu_spent, learn_names, pct, rss_mib, stack_processes
from tests.e2e.stack import ORCHESTRATOR_PORTS, Stack
from tests.helpers import ENV_BASE, free_port, free_port_run, wait_port

ROOT = Path(__file__).resolve().parents[1]
PROVIDERS = """default_model: gpt-4o-mini
providers:
  - name: scripted
    api_key: bench
    base_url: {url}
    catch_all: true
    max_concurrency: 512
    models: [{{name: stub-embedding, embedding: true, embedding_dim: 384}}]
"""


def nats_url(stack: Stack) -> str:
    return f"nats://127.0.0.1:{stack.ports['nats']}"


def metrics_base(count: int, stack: Stack) -> int:
    """A first port with `count` free ports after it (one /metrics port per process), clear of the
    ports the stack will take."""
    while True:
        base = free_port_run(count)
        if stack.reserved_ports.isdisjoint(range(base, base + count)):
            return base


async def turns_by_replica(ports: dict[str, int]) -> dict[str, float]:
    """Each orchestrator process's finished turns (`mnemo_turns_total`, all stop reasons)."""
    out: dict[str, float] = {}
    async with aiohttp.ClientSession() as http:
        for name, port in ports.items():
            async with http.get(f"http://127.0.0.1:{port}/metrics") as r:
                text = await r.text()
            out[name] = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                            if line.startswith("mnemo_turns_total"))
    return out


class Pending:
    """Samples the TURNS consumer: the most turns waiting (pending + unacknowledged) seen."""

    def __init__(self, url: str) -> None:
        self.url, self.max_waiting, self.max_unacked = url, 0, 0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Pending:
        self.nc = await nats.connect(self.url)
        self._task = asyncio.create_task(self._sample())
        return self

    async def _sample(self) -> None:
        js = self.nc.jetstream()
        while True:
            info = await js.consumer_info("TURNS", "orchestrator")
            self.max_waiting = max(self.max_waiting, info.num_pending)
            self.max_unacked = max(self.max_unacked, info.num_ack_pending)
            await asyncio.sleep(0.25)  # sampling period

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await self.nc.close()


async def indexed(url: str, timeout: float) -> float:
    """Wait until the recall indexer has nothing pending; the seconds it took."""
    nc = await nats.connect(url)
    began = time.monotonic()
    try:
        js = nc.jetstream()
        while True:
            info = await js.consumer_info("MESSAGES", "recall-indexer")
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return time.monotonic() - began
            if time.monotonic() - began > timeout:
                raise RuntimeError(f"recall indexing still behind after {timeout}s: {info.num_pending} pending")
            await asyncio.sleep(0.2)  # polling a condition with a deadline
    finally:
        await nc.close()


async def create_agents(client: aiohttp.ClientSession, n: int, prefix: str, parallel: int = 16) -> list[str]:
    ids: list[str] = []
    sem = asyncio.Semaphore(parallel)

    async def one(i: int) -> None:
        async with sem, client.post("/v1/agents", json={"name": f"{prefix}-{i}"}, raise_for_status=True) as r:
            ids.append((await r.json())["id"])

    await asyncio.gather(*(one(i) for i in range(n)))
    return ids


async def turn(client: aiohttp.ClientSession, agent: str, text: str) -> float:
    began = time.perf_counter()
    async with client.post(f"/v1/agents/{agent}/messages", json={"message": text}) as r:
        body = await r.read()
    if r.status != 200 or json.loads(body).get("stop_reason") != "end_turn":
        raise RuntimeError(f"turn failed: {r.status} {body[:600]!r}")
    return time.perf_counter() - began


def user_order(recall: list[dict[str, Any]]) -> list[str]:
    return [m.get("text", "") for m in recall if m.get("role") == "user"]


async def order_kept(client: aiohttp.ClientSession, sent: dict[str, list[str]], sample: int) -> tuple[int, int]:
    """(agents checked, agents whose recall holds exactly their turns, each once, in the order sent)."""
    agents = list(sent)[:sample]
    good = 0
    for agent in agents:
        async with client.get(f"/v1/agents/{agent}/export") as r:
            recall = (await r.json())["recall"]
        recall.sort(key=lambda m: (m.get("created_at", ""), m.get("turn_id", ""), m.get("step", 0)))
        if user_order(recall) == sent[agent]:
            good += 1
    return len(agents), good


async def load(client: aiohttp.ClientSession, stack: Stack, args: argparse.Namespace, replicas: int,
               metric_ports: dict[str, int]) -> dict[str, Any]:
    ids = await create_agents(client, args.agents, f"scale-{replicas}")
    sent: dict[str, list[str]] = {a: [] for a in ids}
    for a in ids[: min(len(ids), 64)]:  # warm-up: code paths, connections, caches
        sent[a].append("warm up")
        await turn(client, a, "warm up")
    lat: list[float] = []
    ended: list[float] = []  # when each turn ended, seconds from the start of the schedule
    errors: list[str] = []
    period = len(ids) / args.rate        # each agent's turn slot, so that all agents offer --rate turns/s
    procs = stack_processes(stack)
    await indexed(nats_url(stack), 300)
    before = await turns_by_replica(metric_ports)
    cpu0 = cpu_seconds(procs)
    began = time.perf_counter()

    async def drive(i: int, agent: str) -> None:
        start = began + period * i / len(ids)
        for k in range(args.turns):
            delay = start + k * period - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)  # the open-loop schedule
            text = f"turn {k} of {agent}"
            sent[agent].append(text)
            try:
                lat.append(await turn(client, agent, text))
                ended.append(time.perf_counter() - began)
            except Exception as exc:
                errors.append(str(exc)[:200])

    async with Pending(nats_url(stack)) as pending:
        await asyncio.gather(*(drive(i, a) for i, a in enumerate(ids)))
    wall = time.perf_counter() - began
    caught_up = await indexed(nats_url(stack), 600)
    cpu = cpu_spent(cpu0, cpu_seconds(procs))
    after = await turns_by_replica(metric_ports)
    spread = {k: after[k] - before.get(k, 0.0) for k in after}
    checked, good = await order_kept(client, sent, args.order_sample)
    # Sustained: turns ended per second once the schedule is under way (its first 10 % left out) up to
    # the end of the schedule; turns still running then are not counted. The whole run's rate (turns
    # over the wall time, which ends one turn latency after the schedule) is reported too.
    span = period * args.turns
    steady = [t for t in ended if 0.1 * span <= t <= span]
    return {"replicas": replicas, "turns": len(lat), "wall": wall, "rate": len(steady) / (0.9 * span),
            "overall": len(lat) / wall, "offered": args.rate, "errors": errors,
            "p50": pct(lat, .5), "p95": pct(lat, .95), "p99": pct(lat, .99), "pending": pending.max_waiting,
            "unacked": pending.max_unacked, "cpu": cpu, "rss": rss_mib(procs), "spread": spread,
            "order": (checked, good), "indexing_after": caught_up}


def report_load(r: dict[str, Any], latency: float) -> None:
    n = max(r["turns"], 1)
    even = sum(r["spread"].values()) / max(len(r["spread"]), 1)
    worst = max((abs(v - even) / even for v in r["spread"].values()), default=0.0) if even else float("nan")
    print(f"\n(a) {r['replicas']} orchestrator replica(s): {r['turns']} turns in {r['wall']:.1f}s")
    rows = [("sustained turns/s", f"{r['rate']:.1f} (offered {r['offered']:.0f}; whole run {r['overall']:.1f})",
             ">= 250"),
            ("errors", str(len(r["errors"])), "0"),
            ("p50 / p95 / p99 ms", f"{r['p50'] * 1000:.0f} / {r['p95'] * 1000:.0f} / {r['p99'] * 1000:.0f}",
             f"p99 <= {3 * latency * 1000:.0f}"),
            ("TURNS max pending / unacked", f"{r['pending']} / {r['unacked']}", ""),
            ("turns per replica", ", ".join(f"{k} {v:.0f}" for k, v in sorted(r["spread"].items())),
             f"max deviation {worst * 100:.0f} % (<= 20 %)"),
            ("per-agent order kept", f"{r['order'][1]} / {r['order'][0]} agents checked", "all"),
            ("recall indexing behind at end", f"{r['indexing_after']:.1f}s to catch up", ""),
            ("CPU ms/turn", f"{sum(r['cpu'].values()) / n * 1000:.1f} (" + ", ".join(
                f"{k} {v / n * 1000:.1f}" for k, v in sorted(r["cpu"].items())) + ")", ""),
            ("RSS MiB", f"{sum(r['rss'].values()):.0f} (" + ", ".join(
                f"{k} {v:.0f}" for k, v in sorted(r["rss"].items())) + ")", "")]
    for name, value, target in rows:
        print(f"   {name:<32} {value:<60} {target}")
    for e in r["errors"][:3]:
        print("   error:", e)


async def idle_rss(client: aiohttp.ClientSession, stack: Stack, total: int) -> None:
    have = 0
    async with client.get("/v1/agents", params={"page_size": 1}) as r:
        have = int((await r.json()).get("total", 0) or 0)
    began = time.perf_counter()
    await create_agents(client, max(0, total - have), "idle", parallel=32)
    made = time.perf_counter() - began
    await indexed(nats_url(stack), 300)
    rss = rss_mib(stack_processes(stack))
    print(f"\n(b) idle stack with {total} agents (created the missing {max(0, total - have)} in {made:.0f}s): "
          f"RSS {sum(rss.values()):.0f} MiB (" + ", ".join(f"{k} {v:.0f}" for k, v in sorted(rss.items()))
          + ")   target <= 1536 MiB")


async def recall_sizes(client: aiohttp.ClientSession, stack: Stack, sizes: list[int], turns: int) -> None:
    print(f"\n(c) turn latency by recall size ({turns} sequential turns each; messages imported with "
          "POST /v1/agents/{id}/recall, 10,000 per request, then indexed)")
    rows = []
    for size in sizes:
        agent = (await create_agents(client, 1, f"recall-{size}"))[0]
        began = time.perf_counter()
        for start in range(0, size, 10_000):
            batch = [{"role": "user" if i % 2 == 0 else "assistant",
                      "text": f"message {i} about topic {i % 97}: the quick brown fox {i * 7919 % 10007}"}
                     for i in range(start, min(size, start + 10_000))]
            async with client.post(f"/v1/agents/{agent}/recall", json={"messages": batch},
                                   raise_for_status=True) as r:
                await r.read()
        imported = time.perf_counter() - began
        index_s = await indexed(nats_url(stack), 1800)
        for i in range(5):
            await turn(client, agent, f"warm {i}")
        lat = [await turn(client, agent, f"question {i} about topic {i}") for i in range(turns)]
        rows.append((size, imported, index_s, pct(lat, .5), pct(lat, .95)))
    base = rows[0][3] if rows else 0.0
    for size, imported, index_s, p50, p95 in rows:
        print(f"   {size:>7} messages: import {imported:6.1f}s, indexing {index_s:6.1f}s, "
              f"p50 {p50 * 1000:6.1f} ms, p95 {p95 * 1000:6.1f} ms ({(p50 / base - 1) * 100:+.0f} % vs smallest)")


async def run_stack(args: argparse.Namespace, replicas: int, llm_url: str, tmp: Path) -> list[dict[str, Any]]:
    providers = tmp / f"providers-{replicas}.yaml"
    providers.write_text(PROVIDERS.format(url=llm_url))
    stack = Stack(tmp / f"home-{replicas}", llm_base_url=llm_url, extra_env={
        "MNEMO_ORCHESTRATORS": str(replicas), "MNEMO_PROVIDERS_FILE": str(providers), "MNEMO_LOG_LEVEL": "WARNING",
        **({"MNEMO_EMBEDDING_MODEL": "stub-embedding"} if args.remote_embeddings else {}), **dict(
            kv.split("=", 1) for kv in args.env)})
    base = metrics_base(ORCHESTRATOR_PORTS, stack)  # a port per process, whichever the layout
    stack.env["MNEMO_METRICS_PORT"] = str(base)
    stack.start(timeout=300)
    try:
        learn_names(stack)
        names = [c["name"] for c in stack.stack_info()["children"] if c["name"] != "nats"]
        ports = {n: base + i for i, n in enumerate(names)}
        orchestrators = {n: p for n, p in ports.items() if n.startswith("orchestrator") or replicas == 1}
        headers = {"Authorization": f"Bearer {stack.api_key}"}
        connector = aiohttp.TCPConnector(limit=args.agents + 20)
        async with aiohttp.ClientSession(base_url=stack.base_url, headers=headers, connector=connector,
                                         timeout=aiohttp.ClientTimeout(total=120)) as client:
            result = await load(client, stack, args, replicas, orchestrators)
            report_load(result, args.latency_ms / 1000)
            if replicas == min(args.replicas):
                if not args.skip_recall:
                    await recall_sizes(client, stack, args.recall_sizes, args.recall_turns)
                if not args.skip_idle:
                    await idle_rss(client, stack, args.idle_agents)
        return [result]
    finally:
        stack.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=5, help="turns per agent")
    parser.add_argument("--rate", type=float, default=250.0, help="offered turns/s over all agents")
    parser.add_argument("--replicas", type=lambda s: [int(x) for x in s.split(",")], default=[1, 3])
    parser.add_argument("--latency-ms", type=float, default=200.0)
    parser.add_argument("--order-sample", type=int, default=200, help="agents whose order is checked")
    parser.add_argument("--idle-agents", type=int, default=10_000)
    parser.add_argument("--recall-sizes", type=lambda s: [int(x) for x in s.split(",")],
                        default=[100, 10_000, 100_000])
    parser.add_argument("--recall-turns", type=int, default=30)
    parser.add_argument("--skip-idle", action="store_true")
    parser.add_argument("--skip-recall", action="store_true")
    parser.add_argument("--remote-embeddings", action="store_true",
                        help="embed recall with the scripted server's /v1/embeddings (a hosted embedding model) "
                             "instead of the local embedder: the stack's CPU without embedding")
    parser.add_argument("--env", action="append", default=[], metavar="MNEMO_X=value")
    args = parser.parse_args()
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]  # figures as they come, also to a file
    port = free_port()
    llm = subprocess.Popen([sys.executable, "-m", "tests.scripted_llm", str(port), "--latency-ms",
                            str(args.latency_ms), "--no-record"], env=ENV_BASE, cwd=ROOT, stdout=subprocess.DEVNULL)
    print(f"scale bench: {args.agents} agents x {args.turns} turns offered at {args.rate:.0f} turns/s, model latency "
          f"{args.latency_ms:.0f} ms, replicas {args.replicas}. A shared 2-core machine: figures are noisy.")
    try:
        wait_port(port)
        with tempfile.TemporaryDirectory() as tmp:
            for replicas in args.replicas:
                asyncio.run(run_stack(args, replicas, f"http://127.0.0.1:{port}/v1", Path(tmp)))
    finally:
        llm.terminate()
        llm.wait()


if __name__ == "__main__":
    main()
