"""LoCoMo evidence recall of `conversation_search` (recall memory search).

Each LoCoMo conversation is imported into one agent's recall memory, every turn as one message
(`"<speaker>: <text>"`, plus the caption of a shared photo; created_at from the session date, turns a
minute apart; the message id carries the turn's dia_id such as "D1:3"). Each non-adversarial question
(categories 1-4; 5 is adversarial) is then the query; a question is answered at k when one of its
evidence turns is among the first k hits. Prints recall@1/5/10/25 overall and per category.

Modes:
- default: through the memory service gRPC API (ImportRecall, wait for the indexer, SearchRecall),
  with the memory and llm-proxy services started in-process against a nats-server started here.
- `--direct`: straight on a search backend (embedded by default), with vectors made as the recall
  indexer makes them (each turn embedded once alone by the product's local model, mixed with its
  neighbours'; cached on disk, see vector_cache.py) and contexts derived by the backend: the same
  ranking as the default mode, without the services, in a fraction of the time after the first run.
  `--backend elasticsearch` runs on `--es-url`, else on a noida-db (the emulator the tests use) started
  here; `--es-hybrid linear|boosts|client` picks the way it fuses words and meaning
  (MNEMO_ELASTICSEARCH_HYBRID); noida-db has no `linear` retriever, so `linear` there goes through
  tests/es_proxy.py, which answers it as Elasticsearch does.

Usage: .venv/bin/python bench/locomo_recall.py [--direct [--backend elasticsearch [--es-url URL]
       [--es-hybrid MODE]]] [--data DIR] [--limit-convs N]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

KS = (1, 5, 10, 25)
CATEGORY_NAMES = {1: "multi-hop", 2: "temporal", 3: "open-domain", 4: "single-hop"}


@dataclass
class Turn:
    dia_id: str
    role: str
    text: str
    created_at: datetime


@dataclass
class Question:
    text: str
    evidence: set[str]
    category: int


def parse_session_date(value: str) -> datetime:
    """LoCoMo's "1:56 pm on 8 May, 2023" as an aware UTC datetime."""
    return datetime.strptime(value.strip(), "%I:%M %p on %d %B, %Y").replace(tzinfo=UTC)


def load_conversations(data_dir: Path) -> list[tuple[str, list[Turn], list[Question]]]:
    raw = json.loads((data_dir / "locomo10.json").read_text())
    out = []
    for sample in raw:
        conv = sample["conversation"]
        speaker_a = conv["speaker_a"]
        turns: list[Turn] = []
        sessions = sorted(int(m.group(1)) for k in conv if (m := re.fullmatch(r"session_(\d+)", k)))
        for n in sessions:
            when = parse_session_date(conv[f"session_{n}_date_time"])
            for i, t in enumerate(conv[f"session_{n}"]):
                text = f"{t['speaker']}: {t['text']}"
                if t.get("blip_caption"):
                    text += f" [shares a photo: {t['blip_caption']}]"
                role = "user" if t["speaker"] == speaker_a else "assistant"
                turns.append(Turn(t["dia_id"], role, text, when + timedelta(minutes=i)))
        questions = [Question(q["question"], set(q.get("evidence") or []), int(q["category"]))
                     for q in sample["qa"] if int(q["category"]) != 5 and q.get("evidence")]
        out.append((sample["sample_id"], turns, questions))
    return out


class Scores:
    def __init__(self) -> None:
        self.hits: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.count: dict[int, int] = defaultdict(int)

    def add(self, category: int, ranked_dia_ids: list[str], evidence: set[str]) -> None:
        self.count[category] += 1
        for k in KS:
            if evidence & set(ranked_dia_ids[:k]):
                self.hits[category][k] += 1

    def table(self) -> str:
        lines = [f"{'category':<16}{'n':>6}" + "".join(f"{f'R@{k}':>8}" for k in KS)]
        for cat in sorted(self.count):
            n = self.count[cat]
            lines.append(f"{CATEGORY_NAMES.get(cat, str(cat)):<16}{n:>6}"
                         + "".join(f"{self.hits[cat][k] / n:>8.3f}" for k in KS))
        total = sum(self.count.values())
        lines.append(f"{'overall':<16}{total:>6}" + "".join(
            f"{sum(self.hits[c][k] for c in self.count) / total:>8.3f}" for k in KS))
        return "\n".join(lines)


def dia_id_of(message_id: str) -> str:
    """The dia_id a message id carries ("<conv>:<dia_id>", dia_id like "D1:3")."""
    return message_id.split("|", 1)[-1]


async def run_direct(convs, backend_name: str, es_url: str | None, es_hybrid: str | None = None) -> Scores:
    from vector_cache import CachedEmbedder

    from mnemo.common.config import Settings
    from mnemo.memory.search import RecallDoc, create_backend
    from tests.es_proxy import EsProxy
    from tests.fixtures_search import NoidaElasticsearch

    home = tempfile.mkdtemp(prefix="locomo-")
    noida = proxy = None
    extra: dict[str, object] = {}
    if backend_name == "elasticsearch":
        if not es_url:
            noida = NoidaElasticsearch(Path(home) / "noida").start()
            es_url = noida.url
            if (es_hybrid or Settings().elasticsearch_hybrid) == "linear":
                proxy = await EsProxy(es_url, linear=True).start()  # noida-db has no linear retriever
                es_url = proxy.url
                print("  (linear retriever emulated in front of noida-db: tests/es_proxy.py)")
        extra["elasticsearch_url"] = es_url
        if es_hybrid:
            extra["elasticsearch_hybrid"] = es_hybrid
    settings = Settings(home=home, search_backend=backend_name, **extra)
    backend = create_backend(settings)
    await backend.start()
    embedder = CachedEmbedder()
    scores = Scores()
    try:
        for sample_id, turns, questions in convs:
            t0 = time.perf_counter()
            vectors = embedder.recall_vectors([t.text for t in turns])
            docs = [RecallDoc(id=f"{sample_id}|{t.dia_id}", tenant_id="bench", agent_id=sample_id,
                              role=t.role, text=t.text, created_at=t.created_at, vector=v.tolist())
                    for t, v in zip(turns, vectors, strict=True)]
            for i in range(0, len(docs), 32):  # the indexer's batches
                await backend.index_messages(docs[i: i + 32])
            qvecs = embedder.embed([q.text for q in questions])
            for q, qv in zip(questions, qvecs, strict=True):
                page = await backend.search_messages("bench", sample_id, query=q.text, vector=qv.tolist(),
                                                     limit=max(KS))
                scores.add(q.category, [dia_id_of(h.doc.id) for h in page.hits], q.evidence)
            hybrid = getattr(backend, "hybrid", None)
            print(f"  {sample_id}: {len(turns)} turns, {len(questions)} questions,"
                  f" {time.perf_counter() - t0:.1f}s" + (f" (answered {hybrid.last_mode})" if hybrid else ""),
                  flush=True)
    finally:
        await backend.close()
        if proxy is not None:
            await proxy.stop()
        if noida is not None:
            noida.stop()
    return scores


async def run_service(convs) -> Scores:
    from mnemo.common.config import Settings
    from mnemo.common.grpcutil import client_channel
    from mnemo.llm_proxy.server import LlmProxyService
    from mnemo.memory.server import MemoryService
    from mnemo.v1 import common_pb2, memory_pb2, memory_pb2_grpc
    from tests.helpers import NatsServer, eventually

    home = Path(tempfile.mkdtemp(prefix="locomo-"))
    nats = NatsServer(home / "nats").start()
    scores = Scores()
    try:
        llm = LlmProxyService(Settings(home=home, nats_url=nats.url, llm_port=0))
        await llm.start()
        memory = MemoryService(Settings(home=home, nats_url=nats.url, memory_port=0, llm_addr=llm.address))
        await memory.start()
        try:
            async with client_channel(memory.address) as channel:
                stub = memory_pb2_grpc.MemoryServiceStub(channel)
                for sample_id, turns, questions in convs:
                    t0 = time.perf_counter()
                    agent = await stub.CreateAgent(memory_pb2.CreateAgentRequest(
                        tenant_id="bench", config=common_pb2.AgentConfig(name=sample_id)))
                    ref = common_pb2.AgentRef(tenant_id="bench", agent_id=agent.config.id)
                    msgs = [common_pb2.Message(id=f"{sample_id}|{t.dia_id}", role=t.role, text=t.text,
                                               created_at=t.created_at.isoformat()) for t in turns]
                    await stub.ImportRecall(memory_pb2.ImportRecallRequest(ref=ref, messages=msgs))

                    async def caught_up(ref=ref, n=len(msgs)) -> bool:
                        listed = await stub.SearchRecall(memory_pb2.SearchRecallRequest(ref=ref, page_size=1))
                        return listed.total >= n
                    await eventually(caught_up, timeout=600, interval=0.5, message="recall indexer lag")
                    t_indexed = time.perf_counter()
                    for q in questions:
                        resp = await stub.SearchRecall(memory_pb2.SearchRecallRequest(
                            ref=ref, query=q.text, page=1, page_size=max(KS)))
                        scores.add(q.category, [dia_id_of(h.message.id) for h in resp.hits], q.evidence)
                    print(f"  {sample_id}: {len(turns)} turns imported and indexed in {t_indexed - t0:.1f}s,"
                          f" {len(questions)} questions in {time.perf_counter() - t_indexed:.1f}s", flush=True)
        finally:
            await memory.stop()
            await llm.stop()
    finally:
        nats.stop()
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "locomo")
    parser.add_argument("--direct", action="store_true", help="measure the search backend alone")
    parser.add_argument("--backend", default="embedded", choices=["embedded", "elasticsearch"])
    parser.add_argument("--es-url", default=None)
    parser.add_argument("--es-hybrid", default=None, choices=["linear", "boosts", "client"],
                        help="how Elasticsearch fuses words and meaning (default: the configured way)")
    parser.add_argument("--limit-convs", type=int, default=0)
    args = parser.parse_args()
    convs = load_conversations(args.data)
    if args.limit_convs:
        convs = convs[: args.limit_convs]
    mode = f"direct on {args.backend}" if args.direct else "memory service gRPC API"
    print(f"LoCoMo evidence recall ({mode}): {len(convs)} conversations")
    t0 = time.perf_counter()
    if args.direct:
        scores = asyncio.run(run_direct(convs, args.backend, args.es_url, args.es_hybrid))
    else:
        scores = asyncio.run(run_service(convs))
    print(scores.table())
    print(f"({time.perf_counter() - t0:.0f}s)")


if __name__ == "__main__":
    main()
