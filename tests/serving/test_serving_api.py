"""API contract: /predict, /metrics, the runbook's /api/* endpoints, validation (422 naming the field), auth."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

from tests.serving.serving_support import serving_client

MUTATING = [
    ("post", "/api/config/batch_size", {"value": 16}),
    ("post", "/api/config/learning_rate", {"value": 1e-5}),
    ("post", "/api/config/weight_decay", {"value": 0.01}),
    ("post", "/api/config/mixed_precision", {"enabled": True}),
    ("put", "/api/config/model", {"d_model": 96}),
    ("post", "/api/model/reload", None),
    ("post", "/api/system/clear_gpu_cache", None),
]


def digits(n: int) -> tuple[list[list[int]], np.ndarray]:
    """Real 8x8 digits (ints 0..16) and their labels."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data[:n].astype(int).tolist(), data.target[:n]


def loc(resp) -> list[list]:
    return [e["loc"] for e in resp.json()["detail"]]


def test_predict_returns_classes_and_probabilities_of_seen_classes(client):
    images, _ = digits(12)
    resp = client.post("/predict", json={"instances": images})
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["model_source"] == "champion_record" and body["model_version"] == "1"
    probs = np.array(body["probabilities"])
    assert probs.shape == (12, 10)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-4)
    # only classes learned so far (task_0 + task_1 = 0..3) may be predicted
    assert set(body["classes"]) <= {0, 1, 2, 3}
    assert np.all(probs[:, 4:] == 0)
    assert body["classes"] == probs.argmax(axis=1).tolist()


@pytest.mark.parametrize(
    ("payload", "where"),
    [
        ({"instances": [[0] * 63]}, ["body", "instances", 0]),
        ({"instances": [[0] * 65]}, ["body", "instances", 0]),
        ({"instances": [[0] * 63 + [17]]}, ["body", "instances", 0, 63]),
        ({"instances": [[0] * 63 + [-1]]}, ["body", "instances", 0, 63]),
        ({"instances": [[0] * 63 + ["7"]]}, ["body", "instances", 0, 63]),
        ({"instances": [[0] * 63 + [1.5]]}, ["body", "instances", 0, 63]),
        ({"instances": []}, ["body", "instances"]),
        ({"instances": [[0] * 64] * 257}, ["body", "instances"]),
        ({"images": [[0] * 64]}, ["body", "instances"]),
    ],
)
def test_predict_rejects_bad_input_naming_the_field(client, payload, where):
    resp = client.post("/predict", json=payload)
    assert resp.status_code == 422
    assert where in loc(resp), resp.json()


def test_predict_rejects_invalid_json(client):
    resp = client.post("/predict", content=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status_code == 422
    assert loc(resp)[0][0] == "body"


def test_metrics_expose_the_runbook_names(client):
    images, _ = digits(3)
    for img in images:
        assert client.post("/predict", json={"instances": [img]}).status_code == 200
    text = client.get("/metrics").text
    assert "continual_transformer_inference_duration_seconds_count 3.0" in text
    assert 'continual_transformer_inference_duration_seconds_bucket{le="0.1"}' in text
    assert 'continual_transformer_memory_usage_bytes{device="cpu",type="allocated"}' in text
    assert 'continual_transformer_memory_usage_bytes{device="cpu",type="total"}' in text
    assert 'continual_transformer_knowledge_retention_score{task="task_0"}' in text
    assert 'continual_transformer_predictions_total{outcome="ok"} 3.0' in text
    assert (
        'continual_transformer_model_loaded{source="champion_record",task_id="task_1",version="1"} 1.0'
        in text
    )
    assert "process_resident_memory_bytes" in text


def test_slow_requests_log_slow_inference_as_json(serving_env: Path):
    images, _ = digits(1)
    with serving_client(slow_inference_ms=0.001) as client:
        assert client.post("/predict", json={"instances": images}).status_code == 200
    lines = [json.loads(line) for line in (serving_env / "logs" / "app.log").read_text().splitlines()]
    slow = [rec for rec in lines if "slow inference" in rec["message"]]
    assert slow, lines
    assert slow[0]["level"] == "WARNING" and slow[0]["component"] == "app" and slow[0]["rows"] == 1
    assert {"ts", "logger", "duration_ms"} <= set(slow[0])


@pytest.mark.parametrize(("method", "path", "body"), MUTATING, ids=[m[1] for m in MUTATING])
def test_mutating_endpoints_need_the_bearer_token(client, method, path, body):
    missing = getattr(client, method)(path, json=body)
    assert missing.status_code == 401 and missing.headers["www-authenticate"] == "Bearer"
    wrong = getattr(client, method)(path, json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    basic = getattr(client, method)(path, json=body, headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert basic.status_code == 401


def test_the_app_serves_exactly_its_route_table(ct_env: Path):
    """Method, path and token guard of every route come from ``include.ops.serving_routes``, which the monthly
    documentation check reads instead of the app."""
    from include.ops.serving_routes import ROUTES, endpoints
    from include.serving.app import create_app
    from include.serving.auth import require_token

    served = {
        (method, route.path, any(d.call is require_token for d in route.dependant.dependencies))
        for route in create_app().routes
        if hasattr(route, "dependant")  # API routes; the docs routes are Starlette ones
        for method in route.methods
    }
    assert served == {(r.method, r.path, r.auth) for r in ROUTES}
    assert {(m.upper(), p) for m, p, _ in MUTATING} == {(r.method, r.path) for r in ROUTES if r.auth}
    assert len(endpoints()) == len(ROUTES) == len(set(endpoints()))


def test_mutating_endpoints_are_closed_without_a_configured_token(serving_env: Path):
    with serving_client(api_token=None) as client:
        resp = client.post("/api/config/batch_size", json={"value": 8}, headers={"Authorization": "Bearer x"})
        assert resp.status_code == 503 and "CT_API_TOKEN" in resp.json()["detail"]


def test_config_overrides_persist_and_feed_the_next_training_run(client, auth, serving_env: Path):
    from include.ops.run_settings import resolve_train_config
    from include.ops.runtime_config import load_train_overrides

    assert client.post("/api/config/batch_size", json={"value": 16}, headers=auth).json()["overrides"] == {
        "batch_size": 16
    }
    assert client.post("/api/config/learning_rate", json={"value": 1e-5}, headers=auth).status_code == 200
    assert client.post("/api/config/weight_decay", json={"value": 0.01}, headers=auth).status_code == 200
    resp = client.post("/api/config/mixed_precision", json={"enabled": False}, headers=auth)
    assert resp.json()["changed"] == {"mixed_precision": False}
    stored = json.loads((serving_env / "config" / "train_overrides.json").read_text())
    assert stored == {"batch_size": 16, "lr": 1e-5, "weight_decay": 0.01, "mixed_precision": False}
    assert load_train_overrides() == stored
    resolved = resolve_train_config()
    assert (resolved["batch_size"], resolved["lr"], resolved["mixed_precision"]) == (16, 1e-5, False)
    leftovers = [p.name for p in (serving_env / "config").iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/api/config/batch_size", {"value": 0}),
        ("/api/config/batch_size", {"value": "16"}),
        ("/api/config/batch_size", {"value": 16.5}),
        ("/api/config/batch_size", {"value": 5000}),
        ("/api/config/learning_rate", {"value": 0}),
        ("/api/config/learning_rate", {"value": "1e-5"}),
        ("/api/config/weight_decay", {"value": -0.1}),
        ("/api/config/mixed_precision", {"enabled": "yes"}),
        ("/api/config/mixed_precision", {"value": True}),
    ],
)
def test_config_rejects_bad_values_naming_the_field(client, auth, path, payload, serving_env: Path):
    resp = client.post(path, json=payload, headers=auth)
    assert resp.status_code == 422
    assert any(loc[0] == "body" and loc[-1] in ("value", "enabled") for loc in loc(resp)), resp.json()
    assert not (serving_env / "config" / "train_overrides.json").exists()


def test_model_config_get_and_put(client, auth, serving_env: Path):
    body = client.get("/api/config/model").json()
    assert body["loaded"]["d_model"] == 64 and body["overrides"] == {}
    assert body["effective"] == body["loaded"]
    resp = client.put("/api/config/model", json={"d_model": 48, "n_heads": 4}, headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["overrides"] == {"d_model": 48, "n_heads": 4} and resp.json()["differs_from_served"]
    assert client.get("/api/config/model").json()["effective"]["d_model"] == 48
    stored = json.loads((serving_env / "config" / "model_overrides.json").read_text())
    assert stored == {"d_model": 48, "n_heads": 4}


@pytest.mark.parametrize(
    ("payload", "field"),
    [({"d_model": "wide"}, "d_model"), ({"bogus": 1}, "bogus"), ({"d_model": 66}, "d_model"), ({}, None)],
)
def test_model_config_put_rejects_bad_fields(client, auth, payload, field):
    resp = client.put("/api/config/model", json=payload, headers=auth)
    assert resp.status_code == 422
    assert field is None or field in json.dumps(resp.json()["detail"])


def test_clear_gpu_cache(client, auth):
    import torch

    resp = client.post("/api/system/clear_gpu_cache", headers=auth)
    assert resp.status_code == 200
    body = resp.json()
    assert body["cuda"] is torch.cuda.is_available() and body["freed_bytes"] >= 0


def _training_runs(var: Path) -> None:
    """Two MLflow runs shaped like the training DAG's (tags, loss per epoch, retention)."""
    from mlflow import MlflowClient

    mlc = MlflowClient(tracking_uri=f"sqlite:///{var / 'mlflow' / 'mlflow.db'}")
    exp = mlc.create_experiment("continual-tiny-transformer")
    for i, task in enumerate(("task_0", "task_1")):
        run = mlc.create_run(
            exp, run_name=f"learn {task}", tags={"ct.task_id": task, "ct.dag_id": "continual_training"}
        )
        for epoch, loss in enumerate((1.5 - i * 0.1, 0.9, 0.4)):
            mlc.log_metric(run.info.run_id, "loss", loss, step=epoch)
        mlc.log_metric(run.info.run_id, "mean_retention", 1.0 if i == 0 else 0.85)
        mlc.log_metric(run.info.run_id, f"retention.{task}", 1.0)
        mlc.log_param(run.info.run_id, "train.lr", "0.002")
        mlc.set_terminated(run.info.run_id)
        time.sleep(0.01)


def test_jobs_recent_and_training_history(client, serving_env: Path):
    import shutil

    from tests.serving.serving_support import empty_mlflow_db

    shutil.copyfile(empty_mlflow_db(), serving_env / "mlflow" / "mlflow.db")
    _training_runs(serving_env)
    reports = serving_env / "reports" / "maintenance"
    reports.mkdir(parents=True)
    (reports / "maintenance_daily_20260101T050000Z.json").write_text(
        json.dumps({"kind": "maintenance_daily", "run_id": "r1", "status": "fail", "started_at": time.time() + 5,
                    "checks": [{"name": "disk_space", "status": "fail"}, {"name": "backup", "status": "pass"}]})
    )  # fmt: skip
    jobs = client.get("/api/jobs/recent?limit=10").json()
    assert jobs["sources"]["mlflow"] == "ok"
    kinds = [(j["kind"], j["name"]) for j in jobs["jobs"]]
    assert kinds[0] == ("maintenance", "maintenance_daily")
    assert jobs["jobs"][0]["failed_checks"] == ["disk_space"]
    assert [j["task_id"] for j in jobs["jobs"] if j["kind"] == "training"] == ["task_1", "task_0"]
    assert client.get("/api/jobs/recent?limit=0").status_code == 422

    history = client.get("/api/training/history").json()["runs"]
    assert [r["task_id"] for r in history] == ["task_0", "task_1"]
    assert history[1]["loss_per_epoch"] == pytest.approx([1.4, 0.9, 0.4])
    assert history[1]["mean_retention"] == 0.85 and history[1]["retention"] == {"task_1": 1.0}
    assert history[0]["lr"] == "0.002" and history[0]["status"] == "FINISHED"


def test_jobs_recent_without_mlflow_says_so(client):
    body = client.get("/api/jobs/recent").json()
    assert body["sources"]["mlflow"] == "unreachable" and body["jobs"] == []


def test_lr_schedule_follows_the_overrides(client, auth):
    from model.config import TrainConfig

    base = client.get("/api/training/lr_schedule").json()
    defaults = TrainConfig()
    train = base["phases"][0]
    assert base["train_samples"] > 100 and train["phase"] == "train"
    lrs = [p["lr"] for p in train["points"]]
    assert max(lrs) == pytest.approx(defaults.lr, rel=0.02)
    assert lrs[-1] == pytest.approx(defaults.lr * defaults.min_lr_frac, rel=0.05)
    assert lrs[0] < max(lrs)  # warm-up
    assert [p["phase"] for p in base["phases"]] == ["train", "finetune"]
    client.post("/api/config/learning_rate", json={"value": 1e-3}, headers=auth)
    after = client.get("/api/training/lr_schedule?train_samples=64").json()
    assert after["config"]["lr"] == 1e-3 and after["train_samples"] == 64
    assert max(p["lr"] for p in after["phases"][0]["points"]) == pytest.approx(1e-3, rel=0.02)
    assert client.get("/api/training/lr_schedule?train_samples=0").status_code == 422
