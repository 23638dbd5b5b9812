"""Chaos harness: a `mnemo up` stack as processes, steady REST load from agents whose clients retry
with the same `Idempotency-Key`, one fault at a time, and the verdict on what the load saw.

Reusable by any chaos test: `ChaosStack` (start, kill a process, wait for health), `Load` (agents
sending paced turns), `verify` (exactly once, no orphaned call, recall caught up) and `recovery`
(seconds until the throughput is back). The size comes from MNEMO_CHAOS_SIZE (small | full).
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

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
    "full": Size("full", agents=8, pace=0.25, before=10.0, fault=10.0, after=30.0, window=3.0, drain=120.0,
                 catchup=120.0),
}


def chaos_size() -> Size:
    """MNEMO_CHAOS_SIZE (small by default)."""
    name = os.environ.get("MNEMO_CHAOS_SIZE", "small").strip().lower() or "small"
    if name not in SIZES:
        raise ValueError(f"MNEMO_CHAOS_SIZE={name!r}: one of {', '.join(SIZES)}")
    return SIZES[name]


# ---- the stack ---------------------------------------------------------------------------------

def port_run(count: int) -> int:
    """A port p with p .. p + count - 1 all free (orchestrator replicas' health ports)."""
    while True:
        port = free_port()
        if port + count > 65535:
            continue
        free = True
        for p in range(port + 1, port + count):
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
            self.ports["orchestrator"] = port_run(orchestrators)
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
    first_2xx: bool = False          # some attempt got a 2xx (200 or 202)
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
                if r.status_code in (200, 202):
                    rec.first_2xx = True
                if r.status_code == 200:
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


# ---- the verdict -------------------------------------------------------------------------------

@dataclass
class Verdict:
    """One row of the chaos table."""

    fault: str
    sent: int = 0
    completed: int = 0
    failed: int = 0
    unfinished: int = 0
    lost: int = 0
    duplicated: int = 0
    orphaned_calls: int = 0
    recover_seconds: float | None = None
    baseline_per_s: float = 0.0
    after_per_s: float = 0.0
    recall_catchup_seconds: float | None = None
    retries: int = 0
    slowest_turn_seconds: float = 0.0
    problems: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def ok(self) -> bool:
        return not self.problems


async def _recall_all(http: httpx.AsyncClient, agent_id: str, role: str) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    page = 1
    while True:
        r = await http.get(f"/v1/agents/{agent_id}/recall", params={"role": role, "page": page, "page_size": 100})
        assert r.status_code == 200, r.text
        hits = r.json()["hits"]
        out.extend(h["message"] for h in hits)
        if len(hits) < 100:
            return out
        page += 1


async def _history(http: httpx.AsyncClient, agent_id: str) -> dict[str, list[dict[str, Any]]]:
    return {role: await _recall_all(http, agent_id, role) for role in ("user", "assistant", "tool")}


def _count_texts(records: list[TurnRecord], history: dict[str, list[dict[str, Any]]]) -> dict[str, int]:
    tokens = {r.text.rsplit(" ", 1)[1]: r.text for r in records}
    counts = dict.fromkeys(tokens, 0)
    for m in history["user"]:
        for word in (m.get("text") or "").replace('"', " ").split():
            if word in counts:
                counts[word] += 1
    return counts


async def verify(base_url: str, api_key: str, load: Load, fault: str, catchup: float) -> Verdict:
    """Every turn the load sent ran exactly once (its user message once in recall, one reply), no
    function call without its return, recall caught up (every message listed and searchable)."""
    v = Verdict(fault, sent=len(load.records))
    v.completed = sum(r.outcome == "completed" for r in load.records)
    v.failed = sum(r.outcome == "failed" for r in load.records)
    v.unfinished = sum(r.outcome == "unfinished" for r in load.records)
    v.retries = sum(r.attempts - 1 for r in load.records)
    v.slowest_turn_seconds = round(max((r.done_at - r.sent_at for r in load.records if r.done_at), default=0.0), 2)
    by_agent: dict[str, list[TurnRecord]] = {}
    for r in load.records:
        by_agent.setdefault(r.agent_id, []).append(r)
    async with httpx.AsyncClient(base_url=base_url, headers={"Authorization": f"Bearer {api_key}"},
                                 timeout=30.0) as http:
        began = time.monotonic()
        histories: dict[str, dict[str, list[dict[str, Any]]]] = {}

        async def caught_up() -> bool:
            done = True
            for agent_id, recs in by_agent.items():
                histories[agent_id] = h = await _history(http, agent_id)
                done = done and all(_count_texts(recs, h).values())
            return done

        deadline = began + catchup
        while True:
            try:
                if await caught_up():
                    v.recall_catchup_seconds = round(time.monotonic() - began, 2)
                    break
            except (httpx.HTTPError, AssertionError) as exc:
                v.problems.append(f"recall listing failed: {exc}")
                return v
            if time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)  # polling the index with a deadline
        lost: list[str] = []
        for agent_id, recs in by_agent.items():
            h = histories[agent_id]
            counts = _count_texts(recs, h)
            lost += [r.text for r in recs if counts[r.text.rsplit(" ", 1)[1]] == 0]
            v.duplicated += sum(c > 1 for c in counts.values())
            replies: dict[str, int] = dict.fromkeys(counts, 0)
            calls: set[str] = set()
            for m in h["assistant"]:
                for call in m.get("tool_calls") or []:
                    calls.add(call["id"])
                    if call["name"] == "send_message":
                        for word in call.get("arguments", "").replace('"', " ").split():
                            if word in replies:
                                replies[word] += 1
            v.duplicated += sum(n > 1 for n in replies.values())
            returned = {m.get("tool_call_id") for m in h["tool"]}
            v.orphaned_calls += len(calls - returned)
            # Searchable by its words, not only listed: the agent's last message.
            last = recs[-1].text.rsplit(" ", 1)[1]
            if counts[last]:
                r = await http.get(f"/v1/agents/{agent_id}/recall", params={"query": last, "role": "user"})
                if r.status_code != 200 or not any(last in (hit["message"].get("text") or "")
                                                   for hit in r.json()["hits"]):
                    v.problems.append(f"{agent_id}: {last} listed but not found by search")
    v.lost = len(lost)
    if lost:
        v.problems.append(f"{v.lost} turns lost: {lost[:5]}")
    if v.duplicated:
        v.problems.append(f"{v.duplicated} turns ran twice")
    if v.orphaned_calls:
        v.problems.append(f"{v.orphaned_calls} function calls without their return")
    bad = [r for r in load.records if r.outcome != "completed"]
    if bad:
        v.problems.append(f"{len(bad)} turns not completed: " + "; ".join(
            f"{r.text}: {r.outcome} after {r.attempts} attempts {r.errors[-2:]}" for r in bad[:5]))
    if v.recall_catchup_seconds is None:
        v.problems.append(f"recall did not catch up within {catchup:.0f}s")
    return v


def recovery(load: Load, fault_at: float, fault_end: float, stop_at: float, window: float,
             fraction: float = 0.5) -> tuple[float | None, float, float]:
    """(seconds from the fault until a throughput window reaches `fraction` of the rate before it,
    the rate before, the rate over the last half of the time after the fault).

    The rate is completed turns per second by completion time. The first window considered starts
    at the fault; for a timed fault, none ending before the fault's end counts as recovered."""
    done = sorted(r.done_at for r in load.records if r.done_at is not None)
    span = max(1e-6, fault_at - (load.started_at + 1.0))  # the first second is warm-up
    baseline = sum(load.started_at + 1.0 <= t < fault_at for t in done) / span
    tail_from = fault_end + (stop_at - fault_end) / 2
    after = sum(tail_from <= t < stop_at for t in done) / max(1e-6, stop_at - tail_from)
    t = fault_at
    while t + window <= stop_at:
        if t + window >= fault_end and sum(t <= x < t + window for x in done) >= fraction * baseline * window:
            return round(t - fault_at, 2), round(baseline, 2), round(after, 2)
        t += 0.1
    return None, round(baseline, 2), round(after, 2)


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
    return v


COLUMNS = [("fault", "fault"), ("sent", "turns sent"), ("completed", "completed"), ("lost", "lost"),
           ("duplicated", "duplicated"), ("orphaned_calls", "orphaned calls"),
           ("recover_seconds", "s to recover"), ("baseline_per_s", "turns/s before"),
           ("after_per_s", "turns/s after"), ("recall_catchup_seconds", "recall catch-up s"),
           ("slowest_turn_seconds", "slowest turn s"), ("retries", "client retries")]


def table(rows: list[dict[str, Any]]) -> str:
    """The chaos table as fixed-width text."""
    cells = [[h for _, h in COLUMNS]]
    for row in rows:
        cells.append(["-" if row.get(k) is None else str(row.get(k)) for k, _ in COLUMNS])
    widths = [max(len(r[i]) for r in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
             for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
