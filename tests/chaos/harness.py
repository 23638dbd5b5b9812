"""Chaos harness: a `mnemo up` stack as processes, steady REST load from agents whose clients retry
with the same `Idempotency-Key`, one fault at a time, and the verdict on what the load saw.

Reusable by any chaos test: `ChaosStack` (start, kill a process, wait for health), `Load` (agents
sending paced turns), `run_fault` (load, fault, load, verdict); the verdict itself is verdict.py.
The size comes from MNEMO_CHAOS_SIZE (small | full).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.chaos.verdict import Verdict, recovery, verify
from tests.e2e.stack import Stack
from tests.helpers import free_port


@dataclass(frozen=True)
class Size:
    """How much load, for how long, around each fault."""

    name: str
    agents: int          # concurrent agents, each sending one turn at a time
    pace: float          # seconds between the starts of an agent's turns (when it keeps up)
    before: float        # seconds of load before the fault (the baseline)
    fault: float         # seconds a timed fault lasts (model, search backend)
    after: float         # seconds of load after the fault (or after a kill)
    window: float        # seconds of the throughput window for recovery
    drain: float         # seconds the clients keep retrying their last turns once the load stops
    catchup: float       # seconds recall has to index every committed message


SIZES = {
    "small": Size("small", agents=3, pace=0.25, before=3.0, fault=3.0, after=12.0, window=1.5, drain=60.0,
                  catchup=60.0),
    "full": Size("full", agents=6, pace=0.3, before=10.0, fault=10.0, after=30.0, window=3.0, drain=120.0,
                 catchup=120.0),
}


def chaos_size() -> Size:
    """MNEMO_CHAOS_SIZE (small by default)."""
    name = os.environ.get("MNEMO_CHAOS_SIZE", "small").strip().lower() or "small"
    if name not in SIZES:
        raise ValueError(f"MNEMO_CHAOS_SIZE={name!r}: one of {', '.join(SIZES)}")
    return SIZES[name]


# ---- the stack ---------------------------------------------------------------------------------

def port_run(count: int, taken: set[int]) -> int:
    """A port p with p .. p + count - 1 all free and none in `taken` (orchestrator replicas' health
    ports; `taken`: the stack's other ports, picked but not bound yet)."""
    while True:
        port = free_port()
        run = range(port, port + count)
        if port + count > 65535 or taken & set(run):
            continue
        free = True
        for p in run[1:]:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", p)) == 0:
                    free = False
        if free:
            return port


def providers_file(path: Path, base_url: str, timeout: float = 4.0) -> Path:
    """A providers file for the scripted model: a short timeout per attempt (so a hanging model costs
    seconds, not a minute) and a circuit breaker that tries again after a few seconds."""
    path.write_text(json.dumps({"providers": [{
        "name": "openai", "base_url": base_url, "api_key": "test", "catch_all": True,
        "timeout": timeout, "breaker_reset": 3.0}]}))
    return path


class ChaosStack(Stack):
    """`mnemo up` with a layout, replicas and extra settings; kills processes by their stack name."""

    def __init__(self, home: Path, llm_base_url: str, layout: str = "split", orchestrators: int = 1,
                 extra_env: dict[str, str] | None = None) -> None:
        home.parent.mkdir(parents=True, exist_ok=True)
        env = {"MNEMO_LAYOUT": layout, "MNEMO_ORCHESTRATORS": str(orchestrators),
               "MNEMO_PROVIDERS_FILE": str(providers_file(home.parent / f"{home.name}-providers.json",
                                                          llm_base_url)),
               "MNEMO_LOG_LEVEL": "WARNING", **(extra_env or {})}
        super().__init__(home, llm_base_url=llm_base_url, extra_env=env)
        if orchestrators > 1:
            others = {p for name, p in self.ports.items() if name != "orchestrator"}
            self.ports["orchestrator"] = port_run(orchestrators, others)
            self.env["MNEMO_ORCHESTRATOR_PORT"] = str(self.ports["orchestrator"])
        self.layout = layout

    def pid(self, name: str) -> int:
        return int(self.stack_info()["processes"][name])

    def kill(self, name: str, sig: signal.Signals = signal.SIGKILL) -> int:
        """Send `sig` to the process `name` of the stack (`mnemo status` names); returns its pid."""
        pid = self.pid(name)
        os.kill(pid, sig)
        return pid

    async def wait_replaced(self, name: str, old_pid: int, timeout: float = 60.0) -> None:
        """Until the supervisor has restarted `name` and the stack answers /healthz again."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                replaced = self.pid(name) != old_pid
            except (OSError, ValueError, KeyError):
                replaced = False
            if replaced and await asyncio.to_thread(self._healthy):
                return
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"mnemo up exited with {self.proc.returncode}:\n{self.output()[-4000:]}")
            if time.monotonic() > deadline:
                raise AssertionError(f"{name} not back within {timeout}s:\n{self.output()[-4000:]}")
            await asyncio.sleep(0.1)  # polling a condition with a deadline

    async def wait_healthy(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not await asyncio.to_thread(self._healthy):
            if time.monotonic() > deadline:
                raise AssertionError(f"stack not healthy within {timeout}s:\n{self.output()[-4000:]}")
            await asyncio.sleep(0.1)  # polling a condition with a deadline


# ---- the load ----------------------------------------------------------------------------------

RETRYABLE_STATUS = {202, 408, 425, 429, 500, 502, 503, 504}


@dataclass
class TurnRecord:
    """One turn as its client saw it."""

    agent_id: str
    key: str
    text: str
    sent_at: float
    attempts: int = 0
    outcome: str = "unfinished"      # completed | failed | unfinished (never got a final answer)
    done_at: float | None = None
    turn_id: str = ""
    errors: list[str] = field(default_factory=list)


class Load:
    """`size.agents` agents, each sending paced turns over REST; a failed or unfinished request is
    retried with the same Idempotency-Key until it gets the turn's final answer."""

    def __init__(self, base_url: str, api_key: str, size: Size, label: str) -> None:
        self.base_url = base_url
        self.headers = {"Authorization": f"Bearer {api_key}"}
        self.size = size
        self.label = label
        self.agents: list[str] = []
        self.records: list[TurnRecord] = []
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._http: httpx.AsyncClient | None = None
        self.started_at = 0.0

    async def start(self) -> None:
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self.headers,
                                       timeout=httpx.Timeout(30.0, connect=5.0),
                                       limits=httpx.Limits(max_connections=64))
        for i in range(self.size.agents):
            r = await self._http.post("/v1/agents", json={"name": f"chaos-{self.label}-{i}"})
            assert r.status_code == 201, r.text
            self.agents.append(r.json()["id"])
        self.started_at = time.monotonic()
        self._tasks = [asyncio.create_task(self._agent_loop(a, i)) for i, a in enumerate(self.agents)]

    async def stop(self) -> None:
        """Stop sending new turns; wait (up to `size.drain`) for the clients to finish their last ones."""
        self._stop.set()
        done, pending = await asyncio.wait(self._tasks, timeout=self.size.drain)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for task in done:
            task.result()
        assert self._http is not None
        await self._http.aclose()

    async def _agent_loop(self, agent_id: str, index: int) -> None:
        assert self._http is not None
        n = 0
        next_at = time.monotonic() + index * self.size.pace / max(1, self.size.agents)
        while not self._stop.is_set():
            delay = next_at - time.monotonic()
            if delay > 0:
                try:  # pacing the offered load, interrupted by stop
                    await asyncio.wait_for(self._stop.wait(), delay)
                    return
                except TimeoutError:
                    pass
            n += 1
            token = uuid.uuid4().hex[:12]
            rec = TurnRecord(agent_id, f"chaos-{token}", f"chaos {self.label} {index} {n} tok{token}",
                             time.monotonic())
            self.records.append(rec)
            await self._drive(rec)
            next_at = max(next_at + self.size.pace, time.monotonic())

    async def _drive(self, rec: TurnRecord) -> None:
        """Send the turn until its final answer, retrying with its key (backoff up to 1 s)."""
        assert self._http is not None
        backoff = 0.1
        while True:
            rec.attempts += 1
            try:
                r = await self._http.post(f"/v1/agents/{rec.agent_id}/messages", json={"message": rec.text},
                                          headers={"Idempotency-Key": rec.key})
            except httpx.HTTPError as exc:
                rec.errors.append(type(exc).__name__)
            else:
                if r.status_code == 200:
                    rec.turn_id = r.json().get("turn_id", "")
                    types = [e["type"] for e in r.json()["events"]]
                    rec.outcome = "completed" if "turn_completed" in types else "failed"
                    rec.done_at = time.monotonic()
                    if rec.outcome == "failed":
                        rec.errors.append("turn_failed: " + json.dumps(r.json()["events"][-1])[:300])
                    return
                rec.errors.append(f"HTTP {r.status_code}")
                if r.status_code not in RETRYABLE_STATUS:
                    rec.outcome = "failed"
                    rec.errors.append(r.text[:300])
                    return
                if r.status_code == 202:
                    continue  # still running: ask again with the key, which waits for the same turn
            await asyncio.sleep(backoff)  # client retry backoff
            backoff = min(1.0, backoff * 2)


Inject = Callable[[], Awaitable[None]]


async def run_fault(stack: ChaosStack, size: Size, fault: str, inject: Inject, heal: Inject | None = None,
                    timed: bool = False) -> Verdict:
    """Load before, `inject`, (for a timed fault) `heal` after `size.fault` seconds, load after; then
    the verdict. The rate after must come back to half the rate before."""
    await stack.wait_healthy()
    load = Load(stack.base_url, stack.api_key, size, fault.replace(" ", "-"))
    await load.start()
    try:
        await asyncio.sleep(size.before)  # steady load for the baseline (a duration, not a synchronization)
        fault_at = time.monotonic()
        await inject()
        if timed:
            await asyncio.sleep(size.fault)  # the fault lasts this long
        if heal is not None:
            await heal()
        fault_end = time.monotonic()
        await asyncio.sleep(size.after)  # load after the fault
        stop_at = time.monotonic()
    finally:
        await load.stop()
    v = await verify(stack.base_url, stack.api_key, load, fault, size.catchup)
    v.recover_seconds, v.baseline_per_s, v.after_per_s = recovery(load, fault_at, fault_end, stop_at, size.window)
    if v.recover_seconds is None:
        v.problems.append(f"throughput never came back to half of {v.baseline_per_s}/s")
    elif v.after_per_s < 0.5 * v.baseline_per_s:
        v.problems.append(f"throughput after the fault {v.after_per_s}/s, before {v.baseline_per_s}/s")
    return v
