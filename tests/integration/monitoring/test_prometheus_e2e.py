"""End to end: real Prometheus scrapes the live app and a real Pushgateway; the runbook's queries return data."""

from __future__ import annotations

import json
import logging
import math
import time
import urllib.parse
import urllib.request

import pytest
import yaml

from include.ops import metrics
from tests.integration.monitoring.monitoring_support import MONITORING, Process, binary
from tests.serving.serving_support import install_state, learned_once

RUNBOOK_LOSS = "avg_over_time(continual_transformer_training_loss[5m])"
RUNBOOK_GPU = (
    '(continual_transformer_memory_usage_bytes{device=~"gpu_.*",type="allocated"} / '
    'continual_transformer_memory_usage_bytes{device=~"gpu_.*",type="total"}) * 100'
)
RUNBOOK_P95 = "histogram_quantile(0.95, rate(continual_transformer_inference_duration_seconds_bucket[5m]))"
# the runbook's GPU query divides series whose `type` labels differ, which never match; ignoring(type) fixes it
GPU_FIXED = (
    '(continual_transformer_memory_usage_bytes{device=~"gpu_.*",type="allocated"} / ignoring(type) '
    'continual_transformer_memory_usage_bytes{device=~"gpu_.*",type="total"}) * 100'
)


def query(prom: str, expr: str) -> list[dict]:
    url = f"{prom}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = json.loads(resp.read())
    assert body["status"] == "success", body
    return body["data"]["result"]


def wait_for(prom: str, expr: str, series: int = 1, timeout: float = 45.0) -> list[dict]:
    """Poll until ``expr`` returns at least ``series`` series, all finite."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = query(prom, expr)
        if len(result) >= series and all(math.isfinite(float(r["value"][1])) for r in result):
            return result
        time.sleep(0.5)
    raise AssertionError(f"{expr!r} returned fewer than {series} finite series in {timeout} s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, pushgateway: str):
    """Live app (uvicorn thread) + Pushgateway + Prometheus with the project's scrape config and rules."""
    from include.ops.settings import ServingSettings
    from include.serving.app import create_app
    from include.serving.server import BackgroundServer, free_port

    root = tmp_path_factory.mktemp("stack")
    var = root / "var"
    install_state(learned_once(), var)
    mp = pytest.MonkeyPatch()
    mp.setenv("CT_VAR_DIR", str(var))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{var / 'mlflow' / 'mlflow.db'}")
    mp.setenv("PUSHGATEWAY_URL", pushgateway)
    app = BackgroundServer(create_app(ServingSettings(degraded_pct=100, unhealthy_pct=100))).__enter__()
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    config["global"].update(scrape_interval="1s", evaluation_interval="1s")
    config["rule_files"] = [str(MONITORING / f) for f in config["rule_files"]]
    targets = {
        "continual-transformer-app": f"127.0.0.1:{app.port}",
        "pushgateway": pushgateway.split("//")[1],
    }
    for job in config["scrape_configs"]:
        job["static_configs"] = [{"targets": [targets[job["job_name"]]]}]
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    prom_url = f"http://127.0.0.1:{port}"
    prom = Process(
        [binary("prometheus"), f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        prom_url + "/-/ready",
        root / "prometheus.log",
    )  # fmt: skip
    yield {"prom": prom_url, "app": app.url, "pushgateway": pushgateway}
    prom.stop()
    app.__exit__(None, None, None)
    mp.undo()


def predict_for(app: str, seconds: float) -> int:
    """Send single-image predictions for ``seconds``; returns how many succeeded."""
    body = json.dumps({"instances": [[(i * 5) % 17 for i in range(64)]]}).encode()
    done, stop = 0, time.monotonic() + seconds
    while time.monotonic() < stop:
        req = urllib.request.Request(
            app + "/predict", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            done += resp.status == 200
        time.sleep(0.02)
    return done


def test_runbook_queries_return_data(stack):
    import torch

    assert metrics.push_training_metrics("task_1", 0.42, {"task_0": 0.91, "task_1": 1.0})
    assert metrics.push_job_metrics("maintenance_daily", 12.5, True)
    prom = stack["prom"]
    up = {r["metric"]["job"]: r["value"][1] for r in wait_for(prom, "up", series=2)}
    assert up == {"continual-transformer-app": "1", "pushgateway": "1"}
    assert predict_for(stack["app"], 4.0) > 10  # traffic across several 1 s scrapes: rate() has data

    loss = wait_for(prom, RUNBOOK_LOSS)
    assert [(r["metric"]["task"], r["metric"]["job"]) for r in loss] == [("task_1", "continual_training")]
    assert float(loss[0]["value"][1]) == pytest.approx(0.42)

    p95 = float(wait_for(prom, RUNBOOK_P95)[0]["value"][1])
    assert 0 < p95 < 1.0

    assert query(prom, RUNBOOK_GPU) == []  # as written in the runbook it can never match (see GPU_FIXED)
    cpu = wait_for(prom, GPU_FIXED.replace('device=~"gpu_.*"', 'device="cpu"'))
    assert all(0 < float(r["value"][1]) < 100 for r in cpu)
    gpu = query(prom, GPU_FIXED)
    assert bool(gpu) == torch.cuda.is_available()

    retention = {r["metric"]["task"]: float(r["value"][1]) for r in wait_for(
        prom, 'continual_transformer_knowledge_retention_score{job="continual_training"}')}  # fmt: skip
    assert retention == {"task_0": 0.91, "task_1": 1.0}
    served = wait_for(
        prom, 'continual_transformer_knowledge_retention_score{job="continual-transformer-app"}'
    )
    assert {r["metric"]["task"] for r in served} == {"task_0", "task_1"}
    last = float(wait_for(prom, 'continual_transformer_job_last_success_timestamp_seconds{job="maintenance_daily"}')
                 [0]["value"][1])  # fmt: skip
    assert abs(last - time.time()) < 120


def test_alert_rules_load_and_evaluate(stack):
    prom = stack["prom"]
    expected = {r["alert"] for g in yaml.safe_load((MONITORING / "alerts" / "continual_transformer.rules.yml")
                .read_text())["groups"] for r in g["rules"]}  # fmt: skip
    deadline = time.monotonic() + 30
    while True:
        with urllib.request.urlopen(prom + "/api/v1/rules", timeout=10) as resp:
            rules = [r for g in json.loads(resp.read())["data"]["groups"] for r in g["rules"]]
        evaluated = [r for r in rules if r.get("lastEvaluation", "").startswith("20")]
        if len(evaluated) == len(expected) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert {r["name"] for r in rules} == expected
    assert all(r["health"] == "ok" for r in rules), [(r["name"], r.get("lastError")) for r in rules]


def test_dashboard_queries_are_valid_promql(stack):
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "continual_transformer.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
    assert len(exprs) >= 8
    titles = " ".join(p["title"].lower() for p in dashboard["panels"])
    for needle in ("loss", "retention", "memory", "latency"):
        assert needle in titles
    for expr in exprs:
        query(stack["prom"], expr)  # asserts status success
    assert wait_for(stack["prom"], exprs[0])  # training loss panel has data


def test_pushes_keep_the_last_success_and_never_raise(pushgateway: str, monkeypatch, caplog):
    monkeypatch.setenv("PUSHGATEWAY_URL", pushgateway)
    assert metrics.push_job_metrics("ops_test_job", 3.0, True, period_s=3600)
    assert metrics.push_job_metrics("ops_test_job", 4.0, False)
    with urllib.request.urlopen(pushgateway + "/metrics", timeout=10) as resp:
        text = resp.read().decode()
    lines = [line for line in text.splitlines() if 'job="ops_test_job"' in line and not line.startswith("#")]
    names = {line.split("{")[0]: float(line.rsplit(" ", 1)[1]) for line in lines}
    assert names["continual_transformer_job_success"] == 0.0
    assert names["continual_transformer_job_duration_seconds"] == 4.0
    assert names["continual_transformer_job_period_seconds"] == 3600.0
    assert abs(names["continual_transformer_job_last_success_timestamp_seconds"] - time.time()) < 120
    assert "continual_transformer_job_last_failure_timestamp_seconds" in names

    from include.serving.server import free_port

    monkeypatch.setenv("PUSHGATEWAY_URL", f"http://127.0.0.1:{free_port()}")
    with caplog.at_level(logging.WARNING, logger="include.ops.metrics"):
        assert metrics.push_job_metrics("ops_test_job", 1.0, True) is False
    assert "push of ops_test_job metrics" in caplog.text
    monkeypatch.delenv("PUSHGATEWAY_URL")
    assert metrics.push_training_metrics("task_0", 0.5, {}) is False
    with pytest.raises(ValueError, match="duration_s"):
        metrics.push_job_metrics("x", -1.0, True)


def test_grafana_provisioning_points_at_the_dashboard_folder():
    ds = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text()
    )
    assert ds["datasources"][0]["uid"] == "prometheus" and ds["datasources"][0]["type"] == "prometheus"
    prov = yaml.safe_load(
        (MONITORING / "grafana" / "provisioning" / "dashboards" / "dashboards.yml").read_text()
    )
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    dashboard = json.loads((MONITORING / "grafana" / "dashboards" / "continual_transformer.json").read_text())
    uids = {t["datasource"]["uid"] for p in dashboard["panels"] for t in p["targets"]}
    assert uids == {"prometheus"}
