"""docker-compose.yml: valid with a .env generated from .env.example, every variable documented, every service
health-checked, the profiles, the GPU reservation, the rollback overlay, and the commands and health checks
exercised as local processes (the ``local_stack`` fixture runs them)."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from include.ops.config_check import compose_variables, example_variables, parse_env_file
from tests.integration.deploy.compose_local import (
    COMPOSE_FILE,
    ENV_EXAMPLE,
    ROLLBACK_FILE,
    ROOT,
    free_port,
    resolve_compose,
)
from tests.integration.deploy.deploy_support import STACK_SERVICES, Stack, require_binaries, write_env_file

CORE = {
    "postgres",
    "redis",
    "minio",
    "minio-init",
    "mlflow",
    "airflow-init",
    "airflow-apiserver",
    "airflow-scheduler",
    "airflow-dag-processor",
    "airflow-triggerer",
    "airflow-worker",
    "app",
}
PROFILES = {
    "gpu": {"airflow-worker-gpu"},
    "monitoring": {"prometheus", "pushgateway", "grafana"},
    "logging": {"elasticsearch", "logstash", "kibana"},
}
AIRFLOW_SHARED = (
    "AIRFLOW__CORE__EXECUTOR",
    "AIRFLOW__CORE__FERNET_KEY",
    "AIRFLOW__API_AUTH__JWT_SECRET",
    "AIRFLOW__API__SECRET_KEY",
    "AIRFLOW__CORE__EXECUTION_API_SERVER_URL",
    "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN",
    "AIRFLOW__CELERY__RESULT_BACKEND",
    "AIRFLOW__CELERY__BROKER_URL",
)


@pytest.fixture(scope="module")
def resolved(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """docker-compose.yml resolved with a generated .env."""
    require_binaries("docker-compose")
    env = tmp_path_factory.mktemp("compose") / ".env"
    write_env_file(env)
    return resolve_compose(env)


def _compose(
    env: Path, *files: Path, args: tuple[str, ...] = ("config", "-q")
) -> subprocess.CompletedProcess:
    cmd = ["docker-compose", "--env-file", str(env)]
    for f in files:
        cmd += ["-f", str(f)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60, cwd=ROOT)


def test_config_is_valid_with_env_generated_from_example(env_file: Path) -> None:
    require_binaries("docker-compose")
    for files in ((COMPOSE_FILE,), (COMPOSE_FILE, ROLLBACK_FILE)):
        proc = _compose(env_file, *files)
        assert proc.returncode == 0, proc.stderr
        assert "variable is not set" not in proc.stderr, proc.stderr


def test_config_fails_naming_a_missing_secret(tmp_path: Path) -> None:
    require_binaries("docker-compose")
    env = tmp_path / ".env"
    values = write_env_file(env)
    env.write_text("".join(f"{k}={v}\n" for k, v in values.items() if k != "REDIS_PASSWORD"))
    proc = _compose(env, COMPOSE_FILE)
    assert proc.returncode != 0
    assert "REDIS_PASSWORD" in proc.stderr


def test_every_compose_variable_is_in_env_example() -> None:
    used = compose_variables(COMPOSE_FILE.read_text() + ROLLBACK_FILE.read_text())
    documented = example_variables(ENV_EXAMPLE)
    assert set(used) - documented == set(), "add these to .env.example with a comment"
    assert {"CT_API_TOKEN", "PUSHGATEWAY_URL", "CT_TRAINING_QUEUE", "CT_TRAINING_BACKEND"} <= documented
    text = ENV_EXAMPLE.read_text()
    for knob in (
        "CT_VAR_DIR",
        "CT_STATE_DIR",
        "MLFLOW_TRACKING_URI",
        "CT_MLFLOW_EXPERIMENT",
        "CT_DOCKER_URL",
    ):
        assert re.search(rf"^# {knob}=", text, re.M), f"{knob} is not documented in .env.example"


def test_no_secret_is_committed() -> None:
    values, _, problems = parse_env_file(ENV_EXAMPLE)
    assert problems == []
    secrets_ = [k for k in values if re.search(r"PASSWORD|SECRET|TOKEN|FERNET", k)]
    assert len(secrets_) >= 8
    for key in secrets_:
        assert values[key].startswith("change-me"), f"{key} in .env.example must be a change-me placeholder"
    # the compose files take every secret from the env file: no literal after a secret-looking key
    for path in (COMPOSE_FILE, ROLLBACK_FILE):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            m = re.match(r"\s*([\w.]*(?:PASSWORD|SECRET|TOKEN|FERNET_KEY)[\w.]*):\s*(\S.*)$", line)
            if m and not m.group(1).endswith("_FILE"):  # a path to a secret is not one
                assert m.group(2).startswith("${"), f"{path.name}:{number} holds a literal secret"
    for ignore in (ROOT / "docker").glob("*.dockerignore"):
        lines = ignore.read_text().splitlines()
        assert ".env" in lines and "var" in lines and ".venv" in lines, ignore.name


def test_every_service_has_a_health_check(resolved: dict) -> None:
    for name, svc in resolved["services"].items():
        test = (svc.get("healthcheck") or {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL") and not svc["healthcheck"].get("disable"), name


def test_profiles_and_core_services(resolved: dict) -> None:
    services = resolved["services"]
    assert {n for n, s in services.items() if not s.get("profiles")} == CORE
    for profile, names in PROFILES.items():
        assert {n for n, s in services.items() if profile in (s.get("profiles") or [])} == names, profile
    # one-shot jobs gate the rest; long-running services restart
    deps = services["airflow-scheduler"]["depends_on"]
    assert deps["airflow-init"]["condition"] == "service_completed_successfully"
    assert services["mlflow"]["depends_on"]["minio-init"]["condition"] == "service_completed_successfully"
    for name in CORE - {"airflow-init", "minio-init"}:
        assert services[name]["restart"] == "unless-stopped", name


def test_gpu_worker_reserves_nvidia_gpus_and_serves_queue_gpu(resolved: dict) -> None:
    gpu = resolved["services"]["airflow-worker-gpu"]
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}] or (
        devices[0]["driver"] == "nvidia"
        and devices[0]["capabilities"] == ["gpu"]
        and str(devices[0]["count"]) == "all"
    )
    cmd = gpu["command"]
    assert cmd[:2] == ["celery", "worker"] and cmd[cmd.index("-q") + 1] == "gpu"
    assert cmd[cmd.index("-H") + 1].startswith("gpu@")
    assert (
        gpu["container_name"] == "continual-transformer-gpu"
    )  # runbook: docker exec continual-transformer-gpu
    assert gpu["image"].endswith("-gpu") and "cu12" in gpu["build"]["args"]["TORCH_INDEX_URL"]
    cpu = resolved["services"]["airflow-worker"]["command"]
    assert cpu[cpu.index("-q") + 1] == "default"


def test_airflow_services_share_secrets_and_point_at_the_execution_api(resolved: dict) -> None:
    airflow = {n: s for n, s in resolved["services"].items() if n.startswith("airflow-")}
    assert len(airflow) == 7
    for key in AIRFLOW_SHARED:
        values = {s["environment"][key] for s in airflow.values()}
        assert len(values) == 1, key
    env = next(iter(airflow.values()))["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"].startswith("db+postgresql+psycopg2://")
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://")
    assert env["MLFLOW_TRACKING_URI"] == "http://mlflow:5000"


def test_bind_mounts_exist_and_monitoring_files_are_mounted(resolved: dict) -> None:
    mounted = {}
    for name, svc in resolved["services"].items():
        for vol in svc.get("volumes", []):
            source, target = str(vol).split(":")[:2]
            if source.startswith("/"):
                assert Path(source).exists(), f"{name}: {source} does not exist"
                mounted[target] = Path(source)
    assert mounted["/etc/prometheus/prometheus.yml"] == ROOT / "include/monitoring/prometheus.yml"
    assert mounted["/etc/prometheus/alerts"] == ROOT / "include/monitoring/alerts"
    assert any(mounted["/etc/grafana/provisioning/datasources"].glob("*.yml"))
    assert any(mounted["/var/lib/grafana/dashboards"].glob("*.json"))
    assert any(mounted["/usr/share/logstash/pipeline"].glob("*.conf"))
    # Grafana's provisioned dashboard provider reads the folder the dashboards are mounted at
    provider = yaml.safe_load(next(mounted["/etc/grafana/provisioning/dashboards"].glob("*.yml")).read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def test_logstash_reads_the_json_lines_log_folder(resolved: dict, tmp_path: Path) -> None:
    from include.ops.jsonlog import configure_json_logging, remove_json_logging

    conf = (ROOT / "docker/logstash/pipeline/continual-transformer.conf").read_text()
    paths = re.findall(r'path => \["([^"]+)"\]', conf)
    logstash_vols = resolved["services"]["logstash"]["volumes"]
    assert any(str(v).startswith("ct-logs:/var/log/continual-transformer") for v in logstash_vols)
    assert 'codec => "json"' in conf
    log_file = configure_json_logging("deploytest", log_dir=tmp_path)
    remove_json_logging("deploytest")
    container_path = f"/var/log/continual-transformer/{log_file.name}"
    assert any(fnmatch.fnmatch(container_path, p) for p in paths), (paths, log_file.name)


def _comparable(svc: dict) -> dict:
    """A service without what the rollback overlay changes; volume order is not significant."""
    out = {k: v for k, v in svc.items() if k not in ("image", "pull_policy")}
    out["environment"] = {k: v for k, v in (svc.get("environment") or {}).items() if k != "CT_TRAINING_IMAGE"}
    out["volumes"] = sorted(map(str, svc.get("volumes", [])))
    return out


def test_rollback_overlay_pins_previous_tags_and_nothing_else(tmp_path: Path) -> None:
    require_binaries("docker-compose")
    env = tmp_path / ".env"
    write_env_file(env, {"CT_IMAGE_TAG": "1.4.0", "CT_PREVIOUS_IMAGE_TAG": "1.3.0"})
    current = resolve_compose(env, [COMPOSE_FILE])["services"]
    rolled = resolve_compose(env, [COMPOSE_FILE, ROLLBACK_FILE])["services"]
    assert set(current) == set(rolled)
    for name, svc in current.items():
        if "build" in svc:  # images built from this repository
            assert svc["image"].split(":")[1].startswith("1.4.0"), name
            assert rolled[name]["image"] == svc["image"].replace(":1.4.0", ":1.3.0"), name
        else:
            assert rolled[name]["image"] == svc["image"], name
        if "CT_TRAINING_IMAGE" in (svc.get("environment") or {}):
            assert rolled[name]["environment"]["CT_TRAINING_IMAGE"].endswith("/app:1.3.0"), name
        assert _comparable(rolled[name]) == _comparable(svc), name


def test_dockerfiles_pin_the_project_stack() -> None:
    reqs = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    airflow = (ROOT / "docker/airflow.Dockerfile").read_text()
    app = (ROOT / "docker/app.Dockerfile").read_text()
    assert f"ARG AIRFLOW_VERSION={reqs['apache-airflow']}" in airflow
    assert "FROM apache/airflow:${AIRFLOW_VERSION}-python${PYTHON_VERSION}" in airflow
    for text in (airflow, app):
        assert f'"torch=={reqs["torch"]}"' in text
        assert "-c constraints.txt" in text
        for src in re.findall(r"^COPY (?:--chown=\S+ )?(.+?) \S+$", text, re.M):
            for part in src.split():
                assert (ROOT / part).exists(), f"COPY source {part} is missing"
    assert re.search(r"TORCH_INDEX_URL=https://download\.pytorch\.org/whl/cu12\d", app), (
        "app image: CUDA 12 torch"
    )
    assert "python" in app and '"include.serving"' in app
    assert (
        "mlflow psycopg2-binary boto3 -c /tmp/constraints.txt"
        in (ROOT / "docker/mlflow.Dockerfile").read_text()
    )


# ---- the same commands and health checks, run as local processes ---------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("service", ["redis", *STACK_SERVICES])
def test_health_check_passes_for_the_running_service(local_stack: Stack, service: str) -> None:
    result = local_stack.local.check(service)
    assert result.returncode == 0, (
        f"{local_stack.local.services[service].healthcheck}: {result.stdout}{result.stderr}"
    )


@pytest.mark.integration
def test_one_shot_and_external_health_checks(local_stack: Stack) -> None:
    # airflow-init's check (airflow db check) against the database it migrated
    assert local_stack.local.check("airflow-init").returncode == 0
    # postgres's check (pg_isready) against the machine's server, as the container would run it
    assert local_stack.local.check("postgres").returncode == 0


@pytest.mark.integration
def test_health_checks_fail_when_the_service_is_down(local_stack: Stack) -> None:
    for service, port in (("app", 8000), ("pushgateway", 9091), ("airflow-apiserver", 8080)):
        spec = local_stack.local.services[service]
        live, dead = str(spec.ports[port]), str(free_port())
        argv = [a.replace(live, dead) for a in spec.healthcheck]
        assert argv != spec.healthcheck
        proc = subprocess.run(argv, env=spec.env, capture_output=True, text=True, timeout=60)
        assert proc.returncode != 0, f"{service}'s health check passed against a closed port"


@pytest.mark.integration
def test_workers_announce_their_queues(local_stack: Stack) -> None:
    for service, queue, node in (
        ("airflow-worker", "default", "celery@"),
        ("airflow-worker-gpu", "gpu", "gpu@"),
    ):
        log = local_stack.local.services[service].log_path.read_text(errors="replace")
        assert f"{node}" in log and "ready." in log, local_stack.local.tail(service)
        assert re.search(rf"\.> {queue}\s+exchange={queue}", log), f"{service} does not consume queue {queue}"


def test_helm_values_route_training_to_a_gpu_worker_set() -> None:
    reqs = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.M))
    celery = yaml.safe_load((ROOT / "deploy/helm/values-celery.yaml").read_text())
    k8s = yaml.safe_load((ROOT / "deploy/helm/values-kubernetes.yaml").read_text())
    assert celery["airflowVersion"] == reqs["apache-airflow"]
    assert celery["executor"] == "CeleryExecutor"
    assert k8s["executor"].split(",") == ["KubernetesExecutor", "CeleryExecutor"]
    for values in (celery, k8s):
        (gpu,) = [s for s in values["workers"]["celery"]["sets"] if s["name"] == "gpu"]
        assert gpu["queue"] == "gpu" and "-q gpu" in " ".join(gpu["args"])
        assert gpu["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert gpu["image"]["tag"].endswith("-gpu")
        env = {e["name"]: e["value"] for e in values["env"]}
        assert env["CT_TRAINING_QUEUE"] == "gpu" and env["MLFLOW_TRACKING_URI"].startswith("http://")
    assert {e["name"]: e["value"] for e in k8s["env"]}["CT_TRAINING_EXECUTOR"] == "CeleryExecutor"
    # credentials only by Secret reference
    for key in ("metadataSecretName", "resultBackendSecretName", "brokerUrlSecretName"):
        assert celery["data"][key]
    assert "metadataConnection" not in celery["data"] and "fernetKey" not in celery
    for path in (ROOT / "deploy/helm").glob("*.yaml"):
        assert not re.search(
            r"(?i)^\s*(password|pass|fernetKey|apiSecretKey|jwtSecret)\s*:\s*\S", path.read_text(), re.M
        )
