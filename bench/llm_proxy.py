"""llm-proxy benchmark: proxy overhead per call, throughput at 100 concurrent callers, local embeddings.

- A scripted OpenAI-compatible endpoint answering at once (tests/scripted_llm.py, its own process) and
  the llm-proxy (`python -m mnemo.llm_proxy`, its own process, metering on a private nats-server).
- Overhead: p50 / p99 of N sequential Chat calls through the proxy (gRPC) minus the same calls made
  directly with the openai SDK (AsyncOpenAI) against the endpoint.
- Throughput: calls/s through the proxy with 100 concurrent callers.
- Local embeddings: sentences/s of all-MiniLM-L6-v2 int8, batches of 64.

Usage: .venv/bin/python bench/llm_proxy.py [--calls 500] [--concurrent-calls 2000] [--sentences 1024]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.helpers import NatsServer, free_port, wait_port  # noqa: E402

TOOLS = [{"type": "function", "function": {
    "name": "send_message", "description": "Send a message to the user",
    "parameters": {"type": "object", "properties": {"message": {"type": "string", "description": "text"}},
                   "required": ["message"]}}}]
MESSAGES = [{"role": "system", "content": "You are Sam, a helpful companion. " * 20},
            {"role": "user", "content": "Hello there, how are you today?"}]


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def direct(base_url: str, n: int) -> list[float]:
    import openai

    client = openai.AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    out = []
    for i in range(n + 20):
        t = time.perf_counter()
        await client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, tools=TOOLS)
        if i >= 20:
            out.append((time.perf_counter() - t) * 1000)
    await client.close()
    return out


def chat_request():  # type: ignore[no-untyped-def]
    from mnemo.v1 import llm_pb2

    return llm_pb2.ChatRequest(
        model="gpt-4o-mini", tenant_id="bench", agent_id="a1",
        messages=[llm_pb2.ChatMessage(role=m["role"], content=m["content"]) for m in MESSAGES],
        tools=[llm_pb2.Tool(name="send_message", description="Send a message to the user",
                            parameters_json=json.dumps(TOOLS[0]["function"]["parameters"]))])


async def through_proxy(address: str, n: int) -> list[float]:
    from mnemo.common.grpcutil import client_channel
    from mnemo.v1 import llm_pb2_grpc

    request = chat_request()
    out = []
    async with client_channel(address) as ch:
        stub = llm_pb2_grpc.LLMServiceStub(ch)
        for i in range(n + 20):
            t = time.perf_counter()
            await stub.Chat(request)
            if i >= 20:
                out.append((time.perf_counter() - t) * 1000)
    return out


async def concurrent(address: str, total: int, callers: int = 100) -> float:
    from mnemo.common.grpcutil import client_channel
    from mnemo.v1 import llm_pb2_grpc

    request = chat_request()
    remaining = total
    async with client_channel(address) as ch:
        stub = llm_pb2_grpc.LLMServiceStub(ch)
        await stub.Chat(request)

        async def caller() -> None:
            nonlocal remaining
            while remaining > 0:
                remaining -= 1
                await stub.Chat(request)

        t = time.perf_counter()
        await asyncio.gather(*[caller() for _ in range(callers)])
        return total / (time.perf_counter() - t)


def embeddings(n: int) -> float:
    from mnemo.llm_proxy.embeddings import LocalEmbedder

    words = "memory agent context window archival recall summary message queue core persona human".split()
    texts = [" ".join(words[(i + j) % len(words)] for j in range(12)) + f" number {i}" for i in range(n)]
    emb = LocalEmbedder()
    emb.embed(texts[:64])
    t = time.perf_counter()
    emb.embed(texts)
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--calls", type=int, default=500)
    ap.add_argument("--concurrent-calls", type=int, default=2000)
    ap.add_argument("--sentences", type=int, default=1024)
    args = ap.parse_args()
    py = sys.executable
    tmp = Path(tempfile.mkdtemp(prefix="mnemo-bench-llm-"))
    nats = NatsServer(tmp / "nats").start()
    llm_port, proxy_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MNEMO_", "OPENAI_"))}
    env.update({"PYTHONPATH": str(ROOT), "OTEL_TRACES_EXPORTER": "none"})
    scripted = subprocess.Popen([py, "-m", "tests.scripted_llm", str(llm_port)], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL)
    providers = tmp / "providers.yaml"
    providers.write_text(f"providers:\n  - name: scripted\n    base_url: http://127.0.0.1:{llm_port}/v1\n"
                         f"    api_key: bench\n    max_concurrency: 256\n")
    proxy = subprocess.Popen([py, "-m", "mnemo.llm_proxy"], cwd=ROOT, stdout=subprocess.DEVNULL,
                             stderr=open(tmp / "proxy.log", "w"),
                             env={**env, "MNEMO_PROVIDERS_FILE": str(providers), "MNEMO_LLM_PORT": str(proxy_port),
                                  "MNEMO_NATS_URL": nats.url, "MNEMO_LOG_LEVEL": "WARNING"})
    try:
        wait_port(llm_port, 30)
        wait_port(proxy_port, 60)
        base_url = f"http://127.0.0.1:{llm_port}/v1"
        address = f"127.0.0.1:{proxy_port}"
        d = asyncio.run(direct(base_url, args.calls))
        p = asyncio.run(through_proxy(address, args.calls))
        print(f"direct SDK call      p50 {statistics.median(d):7.2f} ms   p99 {pct(d, 0.99):7.2f} ms  "
              f"({args.calls} calls)")
        print(f"through the proxy    p50 {statistics.median(p):7.2f} ms   p99 {pct(p, 0.99):7.2f} ms")
        print(f"proxy overhead       p50 {statistics.median(p) - statistics.median(d):7.2f} ms   "
              f"p99 {pct(p, 0.99) - pct(d, 0.99):7.2f} ms   (target p50 <= 1.5 ms)")
        rate = asyncio.run(concurrent(address, args.concurrent_calls))
        print(f"throughput           {rate:7.0f} calls/s with 100 concurrent callers")
    finally:
        for proc in (proxy, scripted):
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        nats.stop()
    rate = embeddings(args.sentences)
    print(f"local embeddings     {rate:7.0f} sentences/s (all-MiniLM-L6-v2 int8, batch 64; target >= 400)")
    print(f"cpu load average     {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")


if __name__ == "__main__":
    main()
