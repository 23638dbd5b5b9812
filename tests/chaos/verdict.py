"""The verdict on a chaos run: what the agents' histories say about the turns the load sent (exactly
once, no orphaned call, recall caught up), how soon the throughput came back, the table."""

from __future__ import annotations

import asyncio
import time
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from tests.chaos.harness import Load, TurnRecord


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
