"""`mnemo up`'s port plan: every process of the stack gets its own metrics port."""

from __future__ import annotations

from pathlib import Path

import pytest

from mnemo.cli.up import _validate_ports, service_waves
from mnemo.common.config import Settings


def metrics_ports(settings: Settings, tmp: Path) -> dict[str, str | None]:
    env = {"MNEMO_METRICS_PORT": str(settings.metrics_port)}
    specs = [spec for wave in service_waves(settings, tmp, env) for spec in wave]
    return {s.name: (s.env or env).get("MNEMO_METRICS_PORT") for s in specs}


@pytest.mark.parametrize("layout", ["split", "combined", "core"])
def test_each_process_of_the_stack_serves_metrics_on_its_own_port(tmp_path: Path, layout: str) -> None:
    """Regression: MNEMO_METRICS_PORT reached every process of `mnemo up` unchanged, so with several
    processes (split layout, orchestrator replicas) all but the first failed to bind it."""
    settings = Settings(home=tmp_path, layout=layout, orchestrators=2, metrics_port=19464)
    ports = metrics_ports(settings, tmp_path)
    assert len(ports) == {"split": 5, "combined": 3, "core": 4}[layout]
    assert sorted(int(p) for p in ports.values() if p) == list(range(19464, 19464 + len(ports)))
    assert ports["orchestrator-1"] != ports["orchestrator-2"]
    _validate_ports(settings)


def test_without_a_metrics_port_nothing_changes(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path, layout="split", orchestrators=2, metrics_port=0)
    assert set(metrics_ports(settings, tmp_path).values()) == {"0"}


def test_a_metrics_port_range_that_overlaps_a_service_port_is_refused(tmp_path: Path) -> None:
    from mnemo.cli.supervisor import StartupError

    settings = Settings(home=tmp_path, layout="split", metrics_port=8282, http_port=8283)
    with pytest.raises(StartupError, match="collide"):
        _validate_ports(settings)


def test_the_embedded_nats_server_gets_one_go_scheduler_thread_unless_told_otherwise(tmp_path: Path) -> None:
    from mnemo.cli.up import nats_spec

    settings = Settings(home=tmp_path)
    env = {"MNEMO_HOME": str(tmp_path), "PATH": "/usr/bin"}
    spec = nats_spec(settings, tmp_path, env)
    assert spec.env is not None and spec.env["GOMAXPROCS"] == "1" and spec.env["PATH"] == "/usr/bin"
    assert nats_spec(settings, tmp_path, {**env, "GOMAXPROCS": "4"}).env["GOMAXPROCS"] == "4"  # type: ignore[index]


def test_auto_layout_is_core_with_one_replica_and_split_with_more(tmp_path: Path) -> None:
    from mnemo.cli.up import service_waves, stack_layout

    def names(settings: Settings) -> list[str]:
        return [spec.name for wave in service_waves(settings, tmp_path, {}) for spec in wave]

    assert Settings(home=tmp_path).layout == "auto"
    one = Settings(home=tmp_path)
    assert stack_layout(one) == "core" and names(one) == ["services", "gateway"]
    waves = service_waves(one, tmp_path, {})
    assert waves[0][0].argv[-1] == "--no-gateway" and waves[1][0].argv[-1] == "mnemo.gateway"
    assert one.http_port in waves[1][0].ports and one.http_port not in waves[0][0].ports
    assert names(Settings(home=tmp_path, layout="combined")) == ["services"]
    assert names(Settings(home=tmp_path, orchestrators=2, layout="core")) == [
        "services", "orchestrator-1", "orchestrator-2", "gateway"]
    three = Settings(home=tmp_path, orchestrators=3)
    assert stack_layout(three) == "split"
    assert sorted(names(three)) == ["gateway", "llm-proxy", "memory", "orchestrator-1", "orchestrator-2",
                                    "orchestrator-3"]
    assert stack_layout(Settings(home=tmp_path, orchestrators=3, layout="combined")) == "combined"
    assert stack_layout(Settings(home=tmp_path, layout="split")) == "split"
