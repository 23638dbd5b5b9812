"""Turn latency and throughput through the REST API of the whole stack (`mnemo up` processes, the
default layout and the default local embedder for recall indexing) with a 0 ms scripted model in
its own process.

    .venv/bin/python bench/turns.py [--sequential N] [--agents A] [--turns T] [--history H]
                                    [--profile DIR] [--env K=V]

(a) N sequential turns to one agent: p50 / p95 per-turn latency.
(b) A agents x T turns at once (each agent's turns in sequence): turns/s, p50 / p95, errors,
    CPU seconds per turn and RSS of every stack process.
(c) What a long conversation costs: sequential turns of an agent with H turns behind it (its whole
    history in its message queue, as with a large-window model before any compaction), in windows
    alternating with a new agent's, so that the machine's drift falls on both alike: p50 and CPU per
    turn of each, and the difference per queued message (--history 0 skips it).
CPU figures include recall indexing: each phase's CPU is read once the recall indexer has caught up
with every message the phase committed (embedding included), not when the last reply arrived.
Targets: p50 <= 10 ms, >= 300 turns/s, 0 errors.
--profile DIR writes py-spy collapsed stacks of every service during (b), one file per process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
import psutil

from tests.e2e.stack import Stack
from tests.helpers import ENV_BASE, free_port, wait_port


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q * (len(s) - 1)))] if s else float("nan")


def stack_processes(stack: Stack) -> list[psutil.Process]:
    assert stack.proc is not None
    root = psutil.Process(stack.proc.pid)
    return [root, *root.children(recursive=True)]


_NAMES: dict[int, str] = {}  # pid -> process name in the stack file (services, nats, orchestrator-2, ...)


def _name(p: psutil.Process) -> str:
    return _NAMES.get(p.pid, "mnemo up")


def learn_names(stack: Stack) -> None:
    for child in stack.stack_info().get("children", []):
        _NAMES[int(child["pid"])] = child["name"]


def cpu_seconds(procs: list[psutil.Process]) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in procs:
        try:
            t = p.cpu_times()
            out[_name(p)] = out.get(_name(p), 0.0) + t.user + t.system
        except psutil.NoSuchProcess:
            pass
    return out


def main_thread_seconds(procs: list[psutil.Process]) -> dict[str, float]:
    """CPU seconds of each Python process's main thread (its event loop): the rest of a process's
    CPU is its other threads' (embedding, SQLite, gRPC)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for p in procs:
        try:
            if "python" not in p.name():
                continue
            with open(f"/proc/{p.pid}/task/{p.pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            out[_name(p)] = out.get(_name(p), 0.0) + (int(fields[11]) + int(fields[12])) / tick
        except (psutil.NoSuchProcess, OSError):
            pass
    return out


def cpu_spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """CPU seconds each process name used between two `cpu_seconds` readings."""
    return {k: after[k] - before.get(k, 0.0) for k in after}


def rss_mib(procs: list[psutil.Process]) -> dict[str, float]:
    out: dict[str, float] = {}
    for p in procs:
        try:
            out[_name(p)] = out.get(_name(p), 0.0) + p.memory_info().rss / 2**20
        except psutil.NoSuchProcess:
            pass
    return out


async def indexed(stack: Stack, timeout: float = 120.0) -> None:
    """Wait until the recall indexer has indexed every committed message (its consumer has nothing
    pending or unacknowledged)."""
    import nats

    nc = await nats.connect(f"nats://127.0.0.1:{stack.ports['nats']}")
    try:
        js = nc.jetstream()
        deadline = time.monotonic() + timeout
        while True:
            info = await js.consumer_info("MESSAGES", "recall-indexer")
            if info.num_pending == 0 and info.num_ack_pending == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"recall indexing still behind after {timeout}s: {info}")
            await asyncio.sleep(0.05)  # polling a condition with a deadline
    finally:
        await nc.close()


async def send(client: aiohttp.ClientSession, agent: str, text: str) -> float:
    began = time.perf_counter()
    async with client.post(f"/v1/agents/{agent}/messages", json={"message": text}) as r:
        body = await r.read()
    elapsed = time.perf_counter() - began
    if r.status != 200 or json.loads(body).get("stop_reason") != "end_turn":
        raise RuntimeError(f"turn failed: {r.status} {body[:300]!r}")
    return elapsed


async def create_agent(client: aiohttp.ClientSession, name: str) -> str:
    async with client.post("/v1/agents", json={"name": name}, raise_for_status=True) as r:
        return (await r.json())["id"]


async def sequential(client: aiohttp.ClientSession, stack: Stack, n: int, profile: Path | None = None) -> None:
    agent = await create_agent(client, "bench-seq")
    for i in range(10):  # warm-up
        await send(client, agent, f"warm up {i}")
    procs = stack_processes(stack)
    spies = start_profilers(procs, profile / "sequential") if profile else []
    await indexed(stack)
    cpu0, main0 = cpu_seconds(procs), main_thread_seconds(procs)
    lat = [await send(client, agent, f"message {i}") for i in range(n)]
    await indexed(stack)
    cpu1, main1 = cpu_seconds(procs), main_thread_seconds(procs)
    stop_profilers(spies)
    per = {k: v / n * 1000 for k, v in cpu_spent(cpu0, cpu1).items()}
    loops = {k: v / n * 1000 for k, v in cpu_spent(main0, main1).items()}
    print(f"(a) {n} sequential turns, one agent: p50 {pct(lat, .5) * 1000:.1f} ms, "
          f"p95 {pct(lat, .95) * 1000:.1f} ms, mean {statistics.mean(lat) * 1000:.1f} ms, "
          f"CPU {sum(per.values()):.1f} ms/turn ({', '.join(f'{k} {v:.1f}' for k, v in sorted(per.items()))})")
    print("   of which main threads (event loops): "
          + ", ".join(f"{k} {v:.1f}" for k, v in sorted(loops.items())) + " ms/turn")


def start_profilers(procs: list[psutil.Process], out: Path) -> list[subprocess.Popen[bytes]]:
    """py-spy (collapsed stacks, one file per Python process) for the duration of (b)."""
    out.mkdir(parents=True, exist_ok=True)
    spy = Path(sys.executable).with_name("py-spy")
    return [subprocess.Popen([str(spy), "record", "--nonblocking", "--threads", "--format", "raw", "--rate", "250",
                              "-p", str(p.pid), "-o", str(out / f"{_name(p)}.txt")],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            for p in procs if "python" in p.name()]


def stop_profilers(spies: list[subprocess.Popen[bytes]]) -> None:
    for s in spies:
        s.send_signal(signal.SIGINT)
    for s in spies:
        s.wait(timeout=60)


async def concurrent(client: aiohttp.ClientSession, stack: Stack, agents: int, turns: int,
                     profile: Path | None = None, model_pid: int | None = None) -> None:
    ids = [await create_agent(client, f"bench-{i}") for i in range(agents)]
    lat: list[float] = []
    errors: list[str] = []

    async def drive(agent: str) -> None:
        for i in range(turns):
            try:
                lat.append(await send(client, agent, f"hello number {i}"))
            except Exception as exc:
                errors.append(str(exc)[:200])

    procs = stack_processes(stack)
    spies = start_profilers(procs, profile / "concurrent") if profile else []
    outside = [psutil.Process(), *([psutil.Process(model_pid)] if model_pid else [])]
    out0 = [sum(p.cpu_times()[:2]) for p in outside]
    await indexed(stack)
    cpu0 = cpu_seconds(procs)
    began = time.perf_counter()
    await asyncio.gather(*(drive(a) for a in ids))
    wall = time.perf_counter() - began
    await indexed(stack)
    cpu1 = cpu_seconds(procs)
    out1 = [sum(p.cpu_times()[:2]) for p in outside]
    stop_profilers(spies)
    per = cpu_spent(cpu0, cpu1)
    cpu = sum(per.values())
    done = len(lat)
    rss = rss_mib(procs)
    print(f"(b) {agents} agents x {turns} turns concurrently: {done / wall:.0f} turns/s, "
          f"p50 {pct(lat, .5) * 1000:.1f} ms, p95 {pct(lat, .95) * 1000:.1f} ms, errors {len(errors)}, "
          f"CPU {cpu / max(done, 1) * 1000:.1f} ms/turn (all stack processes), "
          f"RSS {sum(rss.values()):.0f} MiB ({', '.join(f'{k} {v:.0f}' for k, v in sorted(rss.items()))})")
    print("   CPU ms/turn by process: " + ", ".join(
        f"{k} {v / max(done, 1) * 1000:.1f}" for k, v in sorted(per.items())))
    print("   outside the stack, CPU ms/turn: load generator "
          + ", scripted model ".join(f"{(b - a) / max(done, 1) * 1000:.1f}" for a, b in zip(out0, out1, strict=True)))
    if errors:
        print("   first errors:", *errors[:3], sep="\n   ")


async def queue_length(client: aiohttp.ClientSession, agent: str) -> int:
    async with client.get(f"/v1/agents/{agent}", raise_for_status=True) as r:
        return int((await r.json())["counts"]["queue"])


async def history(client: aiohttp.ClientSession, stack: Stack, behind: int, windows: int = 6,
                  per_window: int = 25) -> None:
    """(c): windows of `per_window` turns, alternating between an agent with `behind` turns of
    history and a new agent each time; every text is new (no embedding is served from a cache)."""
    long_agent = await create_agent(client, "bench-long")
    for i in range(behind):
        await send(client, long_agent, f"earlier message {i}: hello, how are you?")
    procs = stack_processes(stack)
    figures: dict[str, list[tuple[float, float]]] = {"new": [], "long": []}
    queued: dict[str, list[int]] = {"new": [], "long": []}
    sent = 0
    for w in range(windows):
        for kind in ("new", "long"):
            agent = long_agent if kind == "long" else await create_agent(client, f"bench-new-{w}")
            queued[kind].append(await queue_length(client, agent))
            await indexed(stack)
            cpu0 = cpu_seconds(procs)
            lat = []
            for _ in range(per_window):
                lat.append(await send(client, agent, f"window message {sent}: hello, how are you?"))
                sent += 1
            await indexed(stack)
            cpu = sum(cpu_spent(cpu0, cpu_seconds(procs)).values())
            figures[kind].append((statistics.median(lat), cpu / per_window))
    p50 = {k: statistics.median(x[0] for x in v) * 1000 for k, v in figures.items()}
    cpu = {k: statistics.median(x[1] for x in v) * 1000 for k, v in figures.items()}
    # Both queues grow alike in a window: the long one holds this many messages more throughout.
    extra = statistics.median(queued["long"]) - statistics.median(queued["new"])
    print(f"(c) {behind} turns behind (queue {min(queued['long'])}-{max(queued['long'])} messages as its windows "
          f"began) against a new agent, {windows} alternating windows of {per_window} turns: "
          f"p50 {p50['long']:.1f} against {p50['new']:.1f} ms, CPU {cpu['long']:.1f} against {cpu['new']:.1f} ms/turn; "
          f"per queued message {1000 * (p50['long'] - p50['new']) / extra:.1f} us of latency and "
          f"{1000 * (cpu['long'] - cpu['new']) / extra:.1f} us of CPU a turn")


async def run(args: argparse.Namespace, stack: Stack) -> None:
    headers = {"Authorization": f"Bearer {stack.api_key}"}
    # aiohttp rather than httpx: the load generator shares the machine's cores with the stack, and
    # httpx costs several times more CPU per request.
    connector = aiohttp.TCPConnector(limit=args.agents + 10)
    async with aiohttp.ClientSession(base_url=stack.base_url, headers=headers, connector=connector,
                                     timeout=aiohttp.ClientTimeout(total=60)) as client:
        await sequential(client, stack, args.sequential, args.profile)
        await concurrent(client, stack, args.agents, args.turns, args.profile, args.model_pid)
        if args.history > 0:
            await history(client, stack, args.history)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sequential", type=int, default=200)
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--turns", type=int, default=10)
    parser.add_argument("--history", type=int, default=300,
                        help="turns behind the long conversation of (c); 0 skips (c)")
    parser.add_argument("--profile", type=Path, default=None,
                        help="write py-spy collapsed stacks of every service during (b) into this folder")
    parser.add_argument("--env", action="append", default=[], metavar="MNEMO_X=value",
                        help="a setting of the stack (repeatable), e.g. MNEMO_LAYOUT=split")
    args = parser.parse_args()
    port = free_port()
    llm = subprocess.Popen([sys.executable, "-m", "tests.scripted_llm", str(port)], env=ENV_BASE,
                           cwd=Path(__file__).resolve().parents[1], stdout=subprocess.DEVNULL)
    try:
        wait_port(port)
        with tempfile.TemporaryDirectory() as tmp:
            # The defaults a user runs (the local tenant is not rate limited), plus any --env.
            extra = dict(kv.split("=", 1) for kv in args.env)
            stack = Stack(Path(tmp) / "home", llm_base_url=f"http://127.0.0.1:{port}/v1",
                          extra_env=extra).start(timeout=300)
            try:
                print(f"stack up in {stack.startup_seconds:.1f}s")
                learn_names(stack)
                args.model_pid = llm.pid
                asyncio.run(run(args, stack))
            finally:
                stack.stop()
    finally:
        llm.terminate()
        llm.wait()


if __name__ == "__main__":
    main()
