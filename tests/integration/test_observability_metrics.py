"""The Prometheus endpoint: record through the shared instruments, scrape /metrics, check the series."""

from __future__ import annotations

import httpx
from nats.js.api import ConsumerConfig

from mnemo.common import metrics, subjects
from mnemo.common.natsutil import connect, ensure_jetstream
from tests.helpers import NatsServer, eventually, free_port
from tests.unit.test_observability_deploy import dashboard_series

_PORT = free_port()


def _scrape() -> str:
    resp = httpx.get(f"http://127.0.0.1:{_PORT}/metrics", timeout=5.0)
    assert resp.status_code == 200
    return resp.text


def _value(text: str, series: str, **labels: str) -> float | None:
    """The value of the first sample of `series` whose labels include `labels`."""
    for line in text.splitlines():
        if line.startswith("#") or not line.startswith(series):
            continue
        name, _, _rest = line.partition("{") if "{" in line.split(" ")[0] else (line.split(" ")[0], "", "")
        if name != series:
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return None


def _record_one_of_each() -> None:
    metrics.TURN_LATENCY.record(0.1)
    metrics.STEP_LATENCY.record(0.1)
    metrics.TURNS_IN_FLIGHT.add(0)
    metrics.TURNS_TOTAL.add(0)
    metrics.CONTEXT_UTILIZATION.record(0.1)
    metrics.EVICTIONS.add(0)
    metrics.FUNCTION_ERRORS.add(0)
    metrics.TOKENS.add(0)
    metrics.LLM_ERRORS.add(0)
    metrics.LLM_LATENCY.record(0.1)
    metrics.HTTP_REQUESTS.add(0)
    metrics.HTTP_LATENCY.record(0.1)


def test_every_instrument_exports_its_documented_series() -> None:
    assert metrics.setup_metrics("mnemo-test", _PORT, addr="127.0.0.1") == _PORT
    attrs = {"model": "obs-test-model"}
    metrics.TURN_LATENCY.record(1.7, attrs)
    metrics.STEP_LATENCY.record(0.4, attrs)
    metrics.TURNS_IN_FLIGHT.add(2, {"obs_test": "1"})
    metrics.TURNS_IN_FLIGHT.add(-1, {"obs_test": "1"})
    metrics.TURNS_TOTAL.add(1, {"stop_reason": "obs_test_end"})
    metrics.CONTEXT_UTILIZATION.record(0.73, attrs)
    metrics.EVICTIONS.add(5, attrs)
    metrics.FUNCTION_ERRORS.add(1, {"function": "archival_memory_search"})
    metrics.TOKENS.add(120, {"model": "obs-test-model", "kind": "input"})
    metrics.TOKENS.add(30, {"model": "obs-test-model", "kind": "output"})
    metrics.LLM_ERRORS.add(1, {"kind": "obs_test_rate_limit"})
    metrics.LLM_LATENCY.record(0.9, attrs)
    metrics.HTTP_REQUESTS.add(1, {"route": "/obs-test", "status": "200"})
    metrics.HTTP_LATENCY.record(0.02, {"route": "/obs-test"})

    text = _scrape()
    for series, kind in metrics.PROMETHEUS_SERIES.items():
        if series.startswith("mnemo_jetstream_"):
            continue  # observed only once a consumer is watched: next test
        assert f"# TYPE {series} {kind}" in text, f"{series} ({kind}) not exported"
    assert _value(text, "mnemo_turn_duration_seconds_count", model="obs-test-model") == 1.0
    assert _value(text, "mnemo_turn_duration_seconds_bucket", model="obs-test-model", le="2.5") == 1.0
    assert _value(text, "mnemo_turn_duration_seconds_bucket", model="obs-test-model", le="1.0") == 0.0
    assert _value(text, "mnemo_turns_in_flight", obs_test="1") == 1.0
    assert _value(text, "mnemo_turns_total", stop_reason="obs_test_end") == 1.0
    assert _value(text, "mnemo_context_utilization_bucket", le="0.8", model="obs-test-model") == 1.0
    assert _value(text, "mnemo_context_utilization_bucket", le="0.7", model="obs-test-model") == 0.0
    assert _value(text, "mnemo_llm_tokens_total", kind="input", model="obs-test-model") == 120.0
    assert _value(text, "mnemo_llm_tokens_total", kind="output", model="obs-test-model") == 30.0
    assert _value(text, "mnemo_llm_errors_total", kind="obs_test_rate_limit") == 1.0
    assert _value(text, "mnemo_evictions_total", model="obs-test-model") == 5.0
    assert _value(text, "mnemo_http_requests_total", route="/obs-test", status="200") == 1.0
    assert 'service_name="mnemo-test"' in text  # target_info carries the resource


async def test_jetstream_pending_gauge_follows_the_consumer(private_nats: NatsServer) -> None:
    metrics.setup_metrics("mnemo-test", _PORT, addr="127.0.0.1")
    nc = await connect(private_nats.url, "observability-test")
    try:
        js = nc.jetstream()
        await ensure_jetstream(js)
        await js.add_consumer(subjects.TURNS_STREAM, ConsumerConfig(
            durable_name=subjects.ORCHESTRATOR_CONSUMER, filter_subject="mnemo.turns.>", ack_wait=30))
        for i in range(3):
            await js.publish(subjects.turns_subject("t1", "a1"), f"turn {i}".encode())
        observer = metrics.observe_consumer_pending(js, subjects.TURNS_STREAM, subjects.ORCHESTRATOR_CONSUMER,
                                                    interval=0.1)
        labels = {"stream": "TURNS", "consumer": "orchestrator"}
        await eventually(lambda: _value(_scrape(), "mnemo_jetstream_pending", **labels) == 3.0)
        text = _scrape()
        for series in ("mnemo_jetstream_pending", "mnemo_jetstream_ack_pending", "mnemo_jetstream_redelivered"):
            assert f"# TYPE {series} {metrics.PROMETHEUS_SERIES[series]}" in text
        # Every series a shipped dashboard queries is really served (all instruments recorded now).
        _record_one_of_each()
        scraped = {line.split("{")[0].split(" ")[0] for line in _scrape().splitlines() if line.startswith("mnemo_")}
        assert not dashboard_series() - scraped, f"dashboards query unexported {dashboard_series() - scraped}"

        sub = await js.pull_subscribe_bind(subjects.ORCHESTRATOR_CONSUMER, stream=subjects.TURNS_STREAM)
        msgs = await sub.fetch(2, timeout=5)
        await eventually(lambda: _value(_scrape(), "mnemo_jetstream_pending", **labels) == 1.0
                         and _value(_scrape(), "mnemo_jetstream_ack_pending", **labels) == 2.0)
        for m in msgs:
            await m.ack()
        await eventually(lambda: _value(_scrape(), "mnemo_jetstream_ack_pending", **labels) == 0.0)
        await observer.stop()
        assert _value(_scrape(), "mnemo_jetstream_pending", **labels) is None
    finally:
        await nc.drain()
