"""Where a process's time goes, by stage of a turn, from py-spy raw stacks (`bench/turns.py --profile`).

    .venv/bin/python bench/profile_stages.py DIR/sequential/services.txt [--thread MainThread]

Each sample is charged to the innermost frame that belongs to a stage (recall embedding, token
counting, search index, model call, context assembly, state commit, HTTP, NATS client, ...); samples
in none of them are the event loop's own work (uvloop, callbacks) or other. With `--thread`, only
samples of threads whose name contains it (py-spy records thread names with `--threads`).

py-spy samples threads that are running or waiting to run: a low-priority thread (recall
indexing runs at nice 10) gets more samples than CPU on a busy machine. Compare shares within one
thread, and CPU between threads with `/proc/<pid>/task/<tid>/stat`.
"""

from __future__ import annotations

import argparse
import re
from collections import Counter
from pathlib import Path

STAGES: list[tuple[str, str]] = [
    ("recall / query embedding (onnxruntime)", r"onnxruntime|llm_proxy/embeddings\.py|tokenizers"),
    ("token counting", r"tiktoken|tokens/counting|orchestrator/tokens\.py"),
    ("search index (SQLite FTS5, vectors)", r"memory/search/|sqlite"),
    ("recall indexer", r"memory/recall\.py|memory/commitlog\.py"),
    ("model call (openai SDK, aiohttp)", r"openai/|aiohttp/|httpx2/|llm_proxy/"),
    ("context assembly and step planning",
     r"orchestrator/(context|planner|packing|presets|calls|functions|executor)\.py"),
    ("turn consumer and driver", r"orchestrator/(runner|consumer|scheduling|leases)\.py"),
    ("state read and commit", r"memory/(agents|steps|store|blocks|server|memories)\.py"),
    ("event fan-out", r"gateway/(events|sse|turns)\.py"),
    ("HTTP (uvicorn, FastAPI, gateway)", r"uvicorn/|fastapi/|starlette/|gateway/|pydantic"),
    ("NATS client (JetStream, KV, RPC)", r"nats/|common/(natsrpc|natsutil|events|localrpc|rpcclient)\.py"),
    ("protobuf", r"google/protobuf"),
    ("telemetry", r"opentelemetry|common/telemetry\.py"),
]
_COMPILED = [(name, re.compile(pattern)) for name, pattern in STAGES]


def stage_of(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, pattern in _COMPILED:
            if pattern.search(frame):
                return name
    return "event loop and other"


def shares(path: Path, thread: str | None = None) -> tuple[Counter[str], int]:
    counts: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        frames = stack.split(";")
        if frames[0].startswith("thread ("):
            if thread is not None and thread not in frames[0]:
                continue
            frames = frames[1:]
        counts[stage_of(frames)] += int(n)
        total += int(n)
    return counts, total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("stacks", type=Path, nargs="+")
    parser.add_argument("--thread", default=None, help="only threads whose name contains this")
    args = parser.parse_args()
    for path in args.stacks:
        counts, total = shares(path, args.thread)
        print(f"{path} ({total} samples{', thread ' + args.thread if args.thread else ''})")
        for name, n in counts.most_common():
            print(f"  {n / max(total, 1) * 100:5.1f} %  {name}")


if __name__ == "__main__":
    main()
