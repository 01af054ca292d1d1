"""The maintenance DAGs end to end with ``dag.test()`` against real files, a live app and real backups.

One module-wide world: a learned state with a registered champion, a verified backup, MLflow training runs,
the serving app in its own process (JSON logs in the same log folder), and a webhook receiver.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.dag_helpers import load_dag, state_name
from tests.paths import ROOT
from tests.serving.serving_support import checkpoints, install_state, learned_once, register_champion


@dataclass
class World:
    var: Path
    app_url: str
    webhook: object


def training_runs(var: Path, days_ago: float = 1.0) -> None:
    """MLflow runs like the training DAG's, inside the weekly trend window."""
    from mlflow import MlflowClient

    mlc = MlflowClient(tracking_uri=f"sqlite:///{var / 'mlflow' / 'mlflow.db'}")
    exp = mlc.create_experiment("continual-tiny-transformer")
    start = int((time.time() - days_ago * 86400) * 1000)
    for i, (loss, retention) in enumerate(((0.9, 1.0), (0.6, 0.92))):
        run = mlc.create_run(exp, start_time=start + i * 3_600_000, tags={"ct.task_id": f"task_{i}"})
        mlc.log_metric(run.info.run_id, "loss", loss, step=0)
        mlc.log_metric(run.info.run_id, "mean_retention", retention)
        mlc.set_terminated(run.info.run_id)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, airflow_db: Path, webhook) -> World:
    from include.ops.backup import create_backup
    from include.serving.server import ServerProcess, free_port

    root = tmp_path_factory.mktemp("maintenance")
    var = root / "var"
    mp = pytest.MonkeyPatch()
    for name in (
        "CT_DATA_DIR",
        "CT_STATE_DIR",
        "CT_BACKUP_DIR",
        "CT_LOG_DIR",
        "CT_REPORTS_DIR",
        "CT_LOCK_FILE",
        "CT_VALIDATED_DIR",
        "PUSHGATEWAY_URL",
        "PROMETHEUS_URL",
        "CT_AIRFLOW_URL",
        "CT_DISK_MAX_USED_PCT",
    ):
        mp.delenv(name, raising=False)  # fmt: skip
    mp.setenv("CT_VAR_DIR", str(var))
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{var / 'mlflow' / 'mlflow.db'}")
    (var / "mlflow").mkdir(parents=True)
    install_state(learned_once(), var)
    register_champion(var, checkpoints(var / "state")[0])
    training_runs(var)
    create_backup()
    mp.setenv("AIRFLOW_CONN_ALERT_WEBHOOK", json.dumps({"conn_type": "http", "host": webhook.url}))
    mp.setenv("CT_VULN_PROBE_URL", f"http://127.0.0.1:{free_port()}/unreachable")
    app_env = {"CT_SERVING_SLOW_INFERENCE_MS": "0.001", "CT_SERVING_DEGRADED_PCT": "100",
               "CT_SERVING_UNHEALTHY_PCT": "100"}  # fmt: skip
    with ServerProcess(app_env, log_file=root / "app.stdout") as app:
        mp.setenv("CT_APP_URL", app.url)
        yield World(var, app.url, webhook)
    mp.undo()


def run_dag(dag_id: str, conf: dict | None = None) -> str:
    """``dag.test()`` one maintenance DAG; returns the DAG run state."""
    return state_name(load_dag(dag_id).test(run_conf=conf or {}).state)


def latest_report(var: Path, kind: str) -> dict:
    reports = sorted((var / "reports" / "maintenance").glob(f"{kind}_*.json"))
    assert reports, f"no {kind} report"
    report = json.loads(reports[-1].read_text())
    assert reports[-1].with_suffix(".md").exists()
    return report


def checks(report: dict) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"]}


def predict(app_url: str) -> None:
    body = json.dumps({"instances": [[(i * 3) % 17 for i in range(64)]]}).encode()
    req = urllib.request.Request(
        app_url + "/predict", data=body, headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 200


def diverging_training(var: Path) -> None:
    """A real training run whose loss turns NaN, logging through the training component's JSON log."""
    from include.ops.jsonlog import configure_json_logging, remove_json_logging
    from model.config import TrainConfig
    from model.learner import ContinualLearner
    from model.training import LossDivergedError

    configure_json_logging("training")
    try:
        cfg = TrainConfig(epochs=1, max_samples_per_task=32, finetune_epochs=0, inject_nan_at_step=0)
        learner = ContinualLearner(
            var / "data" / "split_digits" / "manifest.json", var / "diverged", train_cfg=cfg
        )
        with pytest.raises(LossDivergedError):
            learner.learn_task("task_0")
    finally:
        remove_json_logging("training")


def test_daily_fails_visibly_on_diverged_training_slow_inference_and_disk(world: World, monkeypatch):
    diverging_training(world.var)
    predict(world.app_url)  # the app logs "slow inference" (threshold 0.001 ms)
    monkeypatch.setenv("CT_DISK_MAX_USED_PCT", "0.01")
    before = len(world.webhook.received)

    assert run_dag("maintenance_daily") == "failed"

    report = latest_report(world.var, "maintenance_daily")
    got = checks(report)
    assert report["status"] == "fail"
    assert got["error_logs"]["status"] == "fail" and got["disk_space"]["status"] == "fail"
    assert got["app_health"]["status"] == "pass", got["app_health"]
    assert got["mlflow_health"]["status"] == "pass" and got["backup"]["status"] == "pass"
    assert got["airflow_health"]["status"] == "pass", got["airflow_health"]
    patterns = got["error_logs"]["details"]["patterns"]
    assert patterns["loss_diverged"]["count"] >= 1 and patterns["training_errors"]["count"] >= 1
    assert patterns["loss_diverged"]["files"] == ["training.log"]
    assert patterns["slow_inference"]["count"] >= 1 and "app.log" in patterns["slow_inference"]["files"]
    assert any("slow inference" in s for s in patterns["slow_inference"]["samples"])
    assert patterns["cuda_oom"]["count"] == 0
    assert "> threshold 0.01%" in got["disk_space"]["summary"]
    alerts = world.webhook.received[before:]
    assert len(alerts) == 1 and alerts[0]["path"] == "/hooks/ops"
    assert alerts[0]["body"]["text"].startswith("maintenance_daily FAIL")
    assert alerts[0]["body"]["checks"]["disk_space"] == "fail"


def test_daily_passes_on_a_clean_system(world: World, monkeypatch):
    for log in (world.var / "logs").glob("*.log"):
        log.unlink()
    monkeypatch.setenv("CT_DISK_MAX_USED_PCT", "99.99")
    before = len(world.webhook.received)

    assert run_dag("maintenance_daily") == "success"

    report = latest_report(world.var, "maintenance_daily")
    assert {n: c["status"] for n, c in checks(report).items()} == {
        "app_health": "pass", "airflow_health": "pass", "mlflow_health": "pass",
        "error_logs": "pass", "disk_space": "pass", "backup": "pass",
    }  # fmt: skip
    assert report["status"] == "pass"
    assert len(world.webhook.received) == before  # nothing to alert about

    from mlflow import MlflowClient

    mlc = MlflowClient(tracking_uri=os.environ["MLFLOW_TRACKING_URI"])
    exp = mlc.get_experiment_by_name("continual-tiny-transformer-maintenance")
    runs = mlc.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"])
    assert [r.data.tags["ct.status"] for r in runs[:2]] == ["pass", "fail"]
    artifacts = {a.path for a in mlc.list_artifacts(runs[0].info.run_id, "report")}
    assert {Path(a).suffix for a in artifacts} == {".md", ".json"}


def test_weekly_cleans_up_plots_trends_and_drills(world: World):
    old_log = world.var / "logs" / "old.log"
    old_log.parent.mkdir(parents=True, exist_ok=True)
    old_log.write_text("{}\n")
    forty_days = time.time() - 40 * 86400
    os.utime(old_log, (forty_days, forty_days))

    assert run_dag("maintenance_weekly", {"keep_checkpoints": 1}) == "success"

    report = latest_report(world.var, "maintenance_weekly")
    got = checks(report)
    assert got["dependency_audit"]["status"] == "skipped"
    assert got["dependency_audit"]["summary"].startswith("skipped: service unreachable")
    assert got["cleanup"]["status"] == "pass", got["cleanup"]
    assert got["cleanup"]["details"]["checkpoints"]["removed"] == ["task_000_task_0.pt"]
    assert "old.log" in got["cleanup"]["details"]["logs"]["removed"] and not old_log.exists()
    assert [p.name for p in checkpoints(world.var / "state")] == ["task_001_task_1.pt"]
    trends = got["performance_trends"]
    assert trends["status"] == "warn" and "PROMETHEUS_URL is unset" in trends["summary"]
    assert trends["details"]["summary"]["runs"] == 2 and trends["details"]["summary"]["loss_last"] == 0.6
    png = Path(trends["details"]["plot"])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and str(png) in report["artifacts"]
    assert got["dr_drill"]["status"] == "pass", got["dr_drill"]
    assert report["status"] == "warn"


def test_monthly_audits_plans_reviews_and_lists_undocumented_items(world: World, tmp_path: Path):
    from include.ops.maintenance import monthly

    dags = monthly.dag_ids(ROOT / "dags")
    targets = monthly.make_targets(ROOT)
    endpoints = monthly.app_endpoints()
    assert {"maintenance_daily", "maintenance_weekly", "maintenance_monthly"} <= set(dags)
    assert "POST /predict" in endpoints and "GET /health/all" in endpoints
    rows = [f"| {d} | DAG `{d}` |" for d in dags if d != "maintenance_monthly"]
    rows += [f"| target | `make {t}` |" for t in targets]
    rows += [f"| endpoint | `{e}` |" for e in endpoints if e != "POST /api/system/clear_gpu_cache"]
    readme = tmp_path / "README.md"
    readme.write_text("# Project\n\n## Runbook map\n\n| procedure | where |\n|---|---|\n" + "\n".join(rows)
                      + "\n\n## Other\n\nmaintenance_monthly and /api/system/clear_gpu_cache outside the map\n")  # fmt: skip
    before = len(world.webhook.received)

    conf = {"readme_path": str(readme), "quick_benchmark": True, "min_train_samples_per_s": 1}
    assert run_dag("maintenance_monthly", conf) == "failed"

    got = checks(latest_report(world.var, "maintenance_monthly"))
    doc = got["documentation"]
    assert doc["status"] == "fail"
    assert doc["details"]["missing"] == {
        "dags": ["maintenance_monthly"], "make_targets": [], "endpoints": ["POST /api/system/clear_gpu_cache"]
    }  # fmt: skip
    audit = got["security_audit"]["details"]
    assert (
        set(audit["bandit"]["counts"]) == {"HIGH", "MEDIUM", "LOW"} and "model" in audit["bandit"]["targets"]
    )
    assert set(audit["permissions"]["folders"]) == {
        str(world.var / "state" / "checkpoints"),
        str(world.var / "backups"),
    }
    capacity = got["capacity_planning"]["details"]
    assert capacity["growth"]["checkpoints"]["bytes"] > 0 and capacity["growth"]["backups"]["bytes"] > 0
    review = got["performance_review"]
    assert review["status"] in ("pass", "warn"), review
    assert set(review["details"]["throughput"]) == {"inference", "train"}
    items = {c["item"]: c for c in review["details"]["checklist"]}
    assert len(items) == 7
    assert items["Inference latency P95"]["measured"] > 0 and items["Network latency"]["measured"] > 0
    assert items["Training throughput"]["status"] == "met"
    assert items["GPU memory utilization"]["status"] in ("met", "not met", "n/a")
    assert world.webhook.received[before:][-1]["body"]["kind"] == "maintenance_monthly"


def test_make_health_is_the_runbook_health_check(world: World):
    import subprocess

    from include.serving.server import free_port

    ok = subprocess.run(["make", "-s", "health", f"APP_URL={world.app_url}"], cwd=ROOT, capture_output=True,
                        text=True, timeout=120)  # fmt: skip
    assert ok.returncode == 0 and "Health check passed" in ok.stdout, ok.stdout + ok.stderr
    before = len(world.webhook.received)
    dead = f"http://127.0.0.1:{free_port()}"
    failed = subprocess.run(["make", "-s", "health", f"APP_URL={dead}", f"WEBHOOK_URL={world.webhook.url}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert failed.returncode != 0 and "Health check failed" in failed.stdout
    assert world.webhook.received[before:] == [
        {"path": "/hooks/ops", "body": {"text": "Health check failed"}}
    ]
