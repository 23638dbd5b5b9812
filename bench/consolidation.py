"""Memory over a long run, before and after the hygiene features: one agent, N turns (default 2,000)
with repeated facts, through the REST API of the whole stack in-process (scripted model, local
MiniLM embeddings).

    .venv/bin/python bench/consolidation.py [--turns N] [--consolidate-every K]

Each turn the scripted model stores a fact in archival memory (drawn from 40 facts, each written in
one of four ways: as first written, lower case without punctuation, "favorite" for "favourite", or
with a "Remember:" in front) and, every 4th turn, appends a line to the `human` block (limit 2000).

  before: deduplication off, no consolidation (MNEMO_ARCHIVAL_DEDUP=false)
  after:  deduplication on (the defaults), consolidation after every K turns (default 100)

Printed per run: archival passages, duplicates among them (passages beyond one per fact), the
`human` block's size, failed function calls (an append to a full block fails), consolidation runs and merge
proposals, turn latency p50 / p95 / p99 / max.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mnemo.gateway.options import GatewayOptions
from tests.fixtures_stack import StackRunner
from tests.helpers import NatsServer
from tests.scripted_llm import ScriptedLLM

FACTS = [("colour", "teal"), ("food", "ramen"), ("city", "Lisbon"), ("book", "Dune"), ("film", "Alien"),
         ("drink", "green tea"), ("sport", "climbing"), ("band", "Radiohead"), ("season", "autumn"),
         ("animal", "otter"), ("game", "chess"), ("fruit", "mango"), ("flower", "tulip"), ("painter", "Turner"),
         ("composer", "Satie"), ("poet", "Szymborska"), ("dish", "paella"), ("cheese", "comte"),
         ("bird", "puffin"), ("tree", "birch"), ("river", "Douro"), ("island", "Madeira"), ("car", "Saab"),
         ("podcast", "Radiolab"), ("instrument", "cello"), ("holiday", "hiking"), ("dessert", "flan"),
         ("spice", "saffron"), ("museum", "Prado"), ("language", "Portuguese"), ("actor", "Tilda Swinton"),
         ("street", "Rua Augusta"), ("cafe", "A Brasileira"), ("board game", "Go"), ("tea", "oolong"),
         ("pastry", "pastel de nata"), ("sauce", "piri piri"), ("beach", "Comporta"), ("hobby", "pottery"),
         ("weather", "light rain")]


def variants(thing: str, value: str) -> list[str]:
    first = f"The user's favourite {thing} is {value}."
    return [first, first.lower().rstrip("."), first.replace("favourite", "favorite"), f"Remember: {first}"]


TEXT_OF_FACT = {text: i for i, (thing, value) in enumerate(FACTS) for text in variants(thing, value)}


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


@dataclass
class Run:
    name: str
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)      # failed function calls by name
    samples: list[str] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def step(turn: int, rng: random.Random) -> dict[str, Any]:
    fact = min(int(rng.paretovariate(1.2)) - 1, len(FACTS) - 1)   # a few facts come back very often
    text = rng.choice(variants(*FACTS[fact]))
    calls = [{"name": "archival_memory_insert", "arguments": {"content": text, "request_heartbeat": False}}]
    if turn % 4 == 0:
        thing, value = FACTS[rng.randrange(len(FACTS))]
        calls.append({"name": "core_memory_append", "arguments": {
            "label": "human", "content": f"Likes {value} ({thing}).", "request_heartbeat": False}})
    return {"for": "agent", "tool_calls": calls}   # (not for the summarizer's calls during a compaction)


async def archival_texts(http: Any, agent: str) -> list[str]:
    texts: list[str] = []
    page = 1
    while True:
        r = await http.get(f"/v1/agents/{agent}/archival", params={"page": page, "page_size": 100})
        hits = r.json()["hits"]
        texts += [h["passage"]["text"] for h in hits]
        if len(hits) < 100:
            return texts
        page += 1


async def run(name: str, turns: int, consolidate_every: int | None, root: Path) -> Run:
    os.environ["MNEMO_ARCHIVAL_DEDUP"] = "true" if consolidate_every else "false"
    nats = NatsServer(root / name / "nats").start()
    scripted = ScriptedLLM().start()
    runner = StackRunner(nats.url, root / name, scripted, options=GatewayOptions(
        local_bootstrap=False, rate_per_second=1e6, rate_burst=1e6, turn_timeout=120.0))
    stack = await runner.start()
    result = Run(name)
    rng = random.Random(7)
    try:
        body: dict[str, Any] = {"name": f"bench-{name}", "persona": "I am a patient assistant.",
                                "human": "Facts about the user:", "context_window": 4000}
        if consolidate_every:
            body["consolidation"] = {"enabled": True, "after_turns": consolidate_every}
        agent = (await stack.create_agent(**body))["id"]
        async with stack.http(timeout=180.0) as http:
            for turn in range(1, turns + 1):
                scripted.push(step(turn, rng))
                began = time.perf_counter()
                r = await http.post(f"/v1/agents/{agent}/messages", json={"message": f"turn {turn}"})
                result.latencies.append(time.perf_counter() - began)
                data = r.json()
                if r.status_code != 200 or data.get("stop_reason") != "end_turn":
                    raise RuntimeError(f"turn {turn} failed: {r.status_code} {r.text[:300]}")
                for e in data["events"]:
                    if e["type"] == "function_return" and e.get("status") == "error":
                        result.errors[e.get("name", "?")] = result.errors.get(e.get("name", "?"), 0) + 1
                        if e.get("name") != "core_memory_append" and len(result.samples) < 3:
                            result.samples.append(str(e.get("result"))[:300])
                if turn % 500 == 0:
                    print(f"  {name}: {turn} turns", flush=True)
            info = (await http.get(f"/v1/agents/{agent}")).json()
            summary = (await http.get(f"/v1/agents/{agent}/memory")).json()["summary"]
            texts = await archival_texts(http, agent)
            events = (await http.get(f"/v1/agents/{agent}/events")).json()["events"]
        per_fact: dict[int, int] = {}
        for text in texts:
            per_fact[TEXT_OF_FACT[text]] = per_fact.get(TEXT_OF_FACT[text], 0) + 1
        human = next(b for b in info["blocks"] if b["label"] == "human")
        merges = [m for e in events if e["type"] == "memory_consolidated" for m in e.get("merges", [])]
        status = info.get("consolidation_status") or {}
        result.figures = {
            "archival passages": len(texts), "agent's archival count": info["counts"]["archival"],
            "distinct facts stored": len(per_fact),
            "duplicates": sum(n - 1 for n in per_fact.values()),
            "human block": f"{len(human['value'])}/{human['limit']} chars",
            "failed calls": result.errors or "none",
            "consolidations": status.get("runs", 0), "merge proposals": len(merges),
            "summary chars": len(summary),
        }
    finally:
        await runner.stop()
        scripted.stop()
        nats.stop()
    return result


def report(r: Run) -> None:
    lat = [x * 1000 for x in r.latencies]
    print(f"[{r.name}] " + ", ".join(f"{k}: {v}" for k, v in r.figures.items()))
    for sample in r.samples:
        print(f"[{r.name}] e.g. {sample}")
    print(f"[{r.name}] turn latency: p50 {pct(lat, .5):.1f} ms, p95 {pct(lat, .95):.1f} ms, "
          f"p99 {pct(lat, .99):.1f} ms, max {max(lat):.1f} ms, mean {statistics.mean(lat):.1f} ms "
          f"over {len(lat)} turns")


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=2000)
    parser.add_argument("--consolidate-every", type=int, default=100)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="mnemo-bench-consolidation-") as tmp:
        before = await run("before", args.turns, None, Path(tmp))
        report(before)
        after = await run("after", args.turns, args.consolidate_every, Path(tmp))
        report(after)
        gc.collect()  # (stopped servers are finalized while the loop still runs)


if __name__ == "__main__":
    asyncio.run(main())
