"""A real turn through the in-process stack feeds the Prometheus series the dashboards query,
with the labels the dashboards group by."""

from __future__ import annotations

import json
import re
from collections import defaultdict

import httpx

from mnemo.common import metrics
from tests.fixtures_stack import Stack, stack  # noqa: F401
from tests.helpers import eventually, free_port
from tests.unit.test_observability_deploy import _dashboards

# Recorded by every simple turn (the others need evictions, errors, ... to appear).
ALWAYS = {"mnemo_turn_duration_seconds_count", "mnemo_step_duration_seconds_count", "mnemo_turns_total",
          "mnemo_context_utilization_count", "mnemo_llm_tokens_total", "mnemo_llm_duration_seconds_count",
          "mnemo_http_requests_total", "mnemo_http_duration_seconds_count"}
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def _samples(text: str) -> dict[str, list[dict[str, str]]]:
    out: dict[str, list[dict[str, str]]] = defaultdict(list)
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1).startswith("mnemo_"):
            labels = dict(_LABEL.findall(m.group(2) or ""))
            labels["__value__"] = m.group(3)
            out[m.group(1)].append(labels)
    return out


def _dashboard_groupings() -> dict[str, set[str]]:
    """Metric → labels a dashboard query groups by (`by (...)`) or shows (`{{label}}`)."""
    out: dict[str, set[str]] = defaultdict(set)
    for path in _dashboards():
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                labels = {label.strip() for group in re.findall(r"by \(([^)]*)\)", expr)
                          for label in group.split(",")} - {"le", ""}
                labels |= set(re.findall(r"\{\{(\w+)\}\}", target.get("legendFormat", "")))
                for name in re.findall(r"\b(mnemo_[a-z0-9_]+)", expr):
                    out[name] |= labels
    return out


async def test_a_turn_feeds_the_dashboards_series_with_their_labels(stack: Stack) -> None:
    port = metrics.setup_metrics("mnemo-test", free_port(), addr="127.0.0.1")
    assert port, "metrics endpoint not started"
    agent = await stack.create_agent()
    async with stack.http() as http:
        r = await http.post(f"/v1/agents/{agent['id']}/messages", json={"message": "hello"})
    assert r.status_code == 200, r.text

    def scrape() -> dict[str, list[dict[str, str]]]:
        return _samples(httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text)

    await eventually(lambda: ALWAYS <= set(scrape()), timeout=15,
                     message=f"series missing after a turn: {ALWAYS - set(scrape())}")
    samples = scrape()
    assert any(s.get("model") == "gpt-4o-mini" and s.get("kind") == "input" and float(s["__value__"]) > 0
               for s in samples["mnemo_llm_tokens_total"])
    assert any(s.get("route") == "/v1/agents/{agent_id}/messages" and s.get("status") == "200"
               for s in samples["mnemo_http_requests_total"])
    assert any(s.get("stop_reason") for s in samples["mnemo_turns_total"])
    assert any(s.get("model") == "gpt-4o-mini" for s in samples["mnemo_context_utilization_count"])

    for metric, labels in _dashboard_groupings().items():
        series = [metric] if metric in samples else [f"{metric}_count"]
        present = [s for name in series for s in samples.get(name, [])]
        if not present:
            continue  # not recorded by a plain turn (evictions, errors, queue depth, ...)
        for label in labels:
            assert any(label in s for s in present), f"dashboards group {metric} by {label!r}: no such label"
