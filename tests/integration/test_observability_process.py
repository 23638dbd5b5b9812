"""A service run as a process (`python -m mnemo.orchestrator`) serves /metrics, including the queue
depth of its JetStream consumer, and logs JSON lines."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import httpx

from mnemo.common import subjects
from mnemo.common.natsutil import connect, ensure_jetstream
from tests.helpers import ENV_BASE, NatsServer, eventually, free_port


def _gauge(text: str, name: str, consumer: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + "{") and f'consumer="{consumer}"' in line:
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_orchestrator_process_reports_turns_queue_depth(private_nats: NatsServer, tmp_path: Path) -> None:
    metrics_port = free_port()
    env = {**ENV_BASE, "MNEMO_NATS_URL": private_nats.url, "MNEMO_HOME": str(tmp_path),
           "MNEMO_ORCHESTRATOR_PORT": str(free_port()), "MNEMO_METRICS_PORT": str(metrics_port),
           "MNEMO_MEMORY_ADDR": f"127.0.0.1:{free_port()}", "MNEMO_LLM_ADDR": f"127.0.0.1:{free_port()}",
           "OTEL_TRACES_EXPORTER": "none"}
    # (tests/integration/test_observability_metrics.py checks the gauge follows a consumer with pending work)
    nc = await connect(private_nats.url, "observability-process-test")
    js = nc.jetstream()
    await ensure_jetstream(js)
    log_path = tmp_path / "orchestrator.log"
    with log_path.open("wb") as log:  # the service under test, in its own process
        proc = subprocess.Popen([sys.executable, "-m", "mnemo.orchestrator"], env=env, stdout=log,  # noqa: ASYNC220
                                stderr=subprocess.STDOUT)
    try:
        def scrape() -> str:
            try:
                return httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=2).text
            except httpx.HTTPError:
                return ""

        await eventually(lambda: _gauge(scrape(), "mnemo_jetstream_pending", "orchestrator") is not None,
                         timeout=30, message="no mnemo_jetstream_pending{consumer=orchestrator} served")
        text = scrape()
        assert 'service_name="mnemo-orchestrator"' in text
        assert _gauge(text, "mnemo_jetstream_ack_pending", "orchestrator") is not None
        info = await js.consumer_info(subjects.TURNS_STREAM, subjects.ORCHESTRATOR_CONSUMER)
        assert info.num_pending == _gauge(text, "mnemo_jetstream_pending", "orchestrator") == 0
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        await nc.drain()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert any(line.get("service") == "orchestrator" and line.get("level") for line in lines), log_path.read_text()
