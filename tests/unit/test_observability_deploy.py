"""Deployment artefacts: docker-compose.yml, Kubernetes manifests, collector/Prometheus config, dashboards.

`docker compose config` / `docker-compose config` and `kubectl kustomize` run when installed; the
structural checks below run always.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from mnemo.common.metrics import PROMETHEUS_SERIES
from tests.helpers import venv_bin

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE = ROOT / "docker-compose.yml"
MNEMO_SERVICES = {"gateway": "mnemo.gateway", "orchestrator": "mnemo.orchestrator",
                  "memory": "mnemo.memory", "llm-proxy": "mnemo.llm_proxy"}


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_config_validates() -> None:
    cli = _compose_cli()
    if cli is None:
        pytest.skip("neither `docker compose` nor `docker-compose` is installed")
    result = subprocess.run([*cli, "-f", str(COMPOSE), "config", "-q"], capture_output=True, text=True,
                            cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr


def test_compose_file_matches_the_compose_specification_schema() -> None:
    pytest.importorskip("check_jsonschema")
    result = subprocess.run([venv_bin("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(COMPOSE)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_stack_has_every_part_wired() -> None:
    services = _compose()["services"]
    assert {"nats-1", "nats-2", "nats-3", "elasticsearch", "otel-collector", "jaeger", "prometheus",
            "grafana", *MNEMO_SERVICES} <= set(services)
    for name in ("nats-1", "nats-2", "nats-3"):
        cmd = " ".join(services[name]["command"])
        assert "--jetstream" in cmd and "--cluster_name mnemo" in cmd and "--routes" in cmd
        others = {"nats-1", "nats-2", "nats-3"} - {name}
        assert all(f"nats://{o}:6222" in cmd for o in others)
    es = services["elasticsearch"]
    assert re.search(r"elasticsearch:(\$\{ES_VERSION:-)?9\.", es["image"]), es["image"]
    assert es["environment"]["xpack.security.enabled"] == "false"
    for name, module in MNEMO_SERVICES.items():
        svc = services[name]
        assert svc["command"] == ["python", "-m", module]
        assert svc["build"]["dockerfile"] == "deploy/Dockerfile"
        assert "healthcheck" in svc, name
        assert svc["environment"]["MNEMO_METRICS_PORT"] == "9464"
        assert svc["environment"]["OTEL_TRACES_EXPORTER"] == "otlp"
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
    assert services["orchestrator"]["deploy"]["replicas"] == 2
    assert services["memory"]["environment"]["MNEMO_SEARCH_BACKEND"] == "elasticsearch"
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_dockerfile_is_multistage_non_root_and_portable() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2
    assert "-DGGML_NATIVE=OFF" in text
    assert re.search(r"^USER 10001", text, re.M)
    assert "COPY --from=builder /opt/mnemo /opt/mnemo" in text


def test_prometheus_scrapes_every_service_metrics_port() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    targets = {tuple(sd["names"]): sd["port"] for job in config["scrape_configs"]
               for sd in job.get("dns_sd_configs", [])}
    for name in MNEMO_SERVICES:
        assert targets.get((name,)) == 9464, f"{name} not scraped"


def test_collector_pipelines_use_defined_components() -> None:
    config = yaml.safe_load((DEPLOY / "otel-collector.yaml").read_text())
    for pipeline in config["service"]["pipelines"].values():
        for kind in ("receivers", "processors", "exporters"):
            for component in pipeline.get(kind, []):
                assert component in config[kind], f"{component} not defined in {kind}"
    assert config["exporters"]["otlp/jaeger"]["endpoint"] == "jaeger:4317"
    assert "otlp/jaeger" in config["service"]["pipelines"]["traces"]["exporters"]


def _kustomize(path: Path) -> list[dict[str, Any]]:
    kubectl = shutil.which("kubectl")
    if kubectl:
        out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        return [d for d in yaml.safe_load_all(out.stdout) if d]
    # No kustomize here: the files the kustomization lists, as they are.
    kustomization = yaml.safe_load((path / "kustomization.yaml").read_text())
    docs: list[dict[str, Any]] = []
    for resource in kustomization["resources"]:
        target = path / resource
        docs += _kustomize(target) if target.is_dir() else [d for d in yaml.safe_load_all(target.read_text()) if d]
    return docs


@pytest.mark.parametrize("overlay", ["base", "overlays/production"])
def test_kustomize_builds_complete_manifests(overlay: str) -> None:
    path = DEPLOY / "k8s" / overlay
    for resource in yaml.safe_load((path / "kustomization.yaml").read_text())["resources"]:
        assert (path / resource).exists(), f"{overlay} lists missing {resource}"
    docs = _kustomize(path)
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc["metadata"].get("name"), doc
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    services = {d["metadata"]["name"] for d in docs if d["kind"] == "Service"}
    assert set(deployments) == {f"mnemo-{n}" for n in MNEMO_SERVICES} and set(deployments) <= services
    for name, dep in deployments.items():
        assert dep["apiVersion"] == "apps/v1"
        pod = dep["spec"]["template"]
        assert dep["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        [container] = pod["spec"]["containers"]
        for probe in ("readinessProbe", "livenessProbe"):
            assert probe in container, f"{name} lacks {probe}"
            if name == "mnemo-gateway":
                assert container[probe]["httpGet"]["path"] == "/healthz"
            else:
                assert "grpc" in container[probe], f"{name} {probe} should be a gRPC health probe"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert container["args"][:2] == ["python", "-m"]
        assert any(p["containerPort"] == 9464 for p in container["ports"])
    validate = pytest.importorskip("kubernetes_validate")
    for doc in docs:  # the Kubernetes OpenAPI schemas (bundled), unknown fields rejected
        validate.validate(doc, validate.latest_version(), strict=True)
    [hpa] = [d for d in docs if d["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": "mnemo-orchestrator"}
    assert any(d["kind"] == "ConfigMap" for d in docs)


def _dashboards() -> list[Path]:
    return sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))


def dashboard_series() -> set[str]:
    """Every mnemo_* series named by a PromQL query of a shipped dashboard."""
    names: set[str] = set()
    for path in _dashboards():
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                names |= set(re.findall(r"\b(mnemo_[a-z0-9_]+)", target["expr"]))
    return names


def exported_names(series: dict[str, str]) -> set[str]:
    out: set[str] = set()
    for name, kind in series.items():
        out |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"} if kind == "histogram" else {name}
    return out


def test_dashboards_are_valid_and_query_exported_series() -> None:
    assert _dashboards(), "no dashboards shipped"
    for path in _dashboards():
        dash = json.loads(path.read_text())
        assert dash["uid"] and dash["title"] and dash["panels"]
        ids = [p["id"] for p in dash["panels"]]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        for panel in dash["panels"]:
            for target in panel.get("targets", []):
                assert (target["datasource"]["uid"] == "prometheus"
                        and target["expr"].count("(") == target["expr"].count(")"))
    unknown = dashboard_series() - exported_names(PROMETHEUS_SERIES)
    assert not unknown, f"dashboards query series no service exports: {unknown}"
    titles = " ".join(p["title"].lower() for path in _dashboards() for p in json.loads(path.read_text())["panels"])
    for topic in ("turn latency", "throughput", "tokens", "cost", "context utilization", "errors", "pending"):
        assert topic in titles, f"no dashboard panel about {topic}"


def test_grafana_provisioning_points_at_the_dashboards() -> None:
    prov = DEPLOY / "grafana" / "provisioning"
    sources = yaml.safe_load((prov / "datasources" / "datasources.yaml").read_text())["datasources"]
    assert {s["uid"] for s in sources} >= {"prometheus", "jaeger"}
    compose_grafana = _compose()["services"]["grafana"]["volumes"]
    provider = yaml.safe_load((prov / "dashboards" / "dashboards.yaml").read_text())["providers"][0]
    mount = next(v for v in compose_grafana if v.startswith("./deploy/grafana/dashboards:"))
    assert mount.split(":")[1] == provider["options"]["path"]
