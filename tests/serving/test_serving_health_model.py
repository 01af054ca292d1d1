"""Which model is served (registry champion, verified fallback, none) and the runbook's health responses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.serving.serving_support import TOKEN, checkpoints, register_champion, serving_client


def test_liveness(client):
    resp = client.get("/health")
    assert resp.status_code == 200
    assert resp.json()["status"] == "ok"


def test_without_registry_the_recorded_champion_is_served_degraded(client, serving_env: Path):
    body = client.get("/health/model").json()
    assert body["loaded"] is True and body["status"] == "degraded"
    assert body["source"] == "champion_record" and body["version"] == body["served_version"] == "1"
    assert body["checkpoint_path"] == "checkpoints/task_001_task_1.pt"  # relative to the state folder
    assert body["task_id"] == "task_1"
    assert set(body["retention"]) == {"task_0", "task_1"}
    assert 0.0 <= body["mean_retention"] <= 1.0
    assert body["age_seconds"] >= 0
    assert any("registry unreachable" in issue for issue in body["issues"])
    everything = client.get("/health/all")
    assert everything.status_code == 200
    assert everything.json()["status"] == "degraded"
    assert any(
        issue.startswith("model: serving the last recorded champion v1")
        for issue in everything.json()["issues"]
    )


def test_registry_champion_is_served_and_healthy(serving_env: Path):
    newest = checkpoints(serving_env / "state")[0]
    version = register_champion(serving_env, newest, retention=0.93)
    with serving_client() as client:
        model = client.get("/health/model").json()
        assert (model["source"], model["version"], model["mean_retention"]) == ("registry", version, 0.93)
        resp = client.get("/health/all")
        assert resp.status_code == 200
        body = resp.json()
        assert body["status"] == "healthy", body
        assert set(body["checks"]) == {"system", "model"}
        assert body["checks"]["system"]["memory"]["total_bytes"] > 0
        assert body["checks"]["system"]["disk"] and "cpu" in body["checks"]["system"]


def test_champion_whose_file_does_not_match_its_sha256_is_refused(serving_env: Path):
    newest = checkpoints(serving_env / "state")[0]
    register_champion(serving_env, newest, sha256="0" * 64)
    with serving_client() as client:
        body = client.get("/health/model").json()
        assert body["source"] == "champion_record"
        assert any("!= registry tag" in issue for issue in body["issues"])


def test_corrupted_recorded_champion_is_refused_not_replaced_by_an_older_checkpoint(serving_env: Path):
    newest, older = checkpoints(serving_env / "state")
    data = bytearray(newest.read_bytes())
    data[len(data) // 2] ^= 0xFF
    newest.write_bytes(bytes(data))
    with serving_client() as client:
        resp = client.get("/health/model")
        assert (
            resp.status_code == 503 and resp.json()["loaded"] is False
        )  # the older file verifies: not gated
        assert "!= champion record" in resp.json()["errors"][0]


def test_no_model_at_all_is_unhealthy_503(serving_env: Path):
    for path in (serving_env / "state" / "checkpoints").iterdir():
        path.unlink()
    with serving_client() as client:
        model = client.get("/health/model")
        assert model.status_code == 503 and model.json()["status"] == "unhealthy"
        resp = client.get("/health/all")
        assert resp.status_code == 503
        body = resp.json()
        assert body["status"] == "unhealthy"
        assert any(e.startswith("model: no model loaded") for e in body["errors"])
        pred = client.post("/predict", json={"instances": [[0] * 64]})
        assert pred.status_code == 503


def test_resource_thresholds_degrade_then_fail(serving_env: Path):
    newest = checkpoints(serving_env / "state")[0]
    register_champion(serving_env, newest)
    with serving_client(degraded_pct=0.001, unhealthy_pct=100.0) as client:
        body = client.get("/health/all").json()
        assert body["status"] == "degraded"
        assert any(i.startswith("system: memory") for i in body["issues"])
        assert any(i.startswith("system: disk") for i in body["issues"])
    with serving_client(degraded_pct=0.001, unhealthy_pct=0.002) as client:
        resp = client.get("/health/system")
        assert resp.status_code == 503 and resp.json()["status"] == "unhealthy"
        resp = client.get("/health/all")
        assert resp.status_code == 503 and any(e.startswith("system: memory") for e in resp.json()["errors"])


def test_low_retention_and_old_model_degrade(serving_env: Path):
    newest = checkpoints(serving_env / "state")[0]
    register_champion(serving_env, newest, retention=0.5)
    with serving_client(model_max_age_hours=1e-6) as client:
        issues = client.get("/health/model").json()["issues"]
        assert any("mean retention 0.500 < 0.8" in i for i in issues)
        assert any(i.startswith("model age") for i in issues)


def test_reload_switches_to_the_champion_and_keeps_serving_on_failure(client, serving_env: Path, auth):
    assert client.get("/health/model").json()["source"] == "champion_record"
    newest = checkpoints(serving_env / "state")[0]
    version = register_champion(serving_env, newest)
    resp = client.post("/api/model/reload", headers=auth)
    assert resp.status_code == 200, resp.text
    assert resp.json()["model"]["source"] == "registry" and resp.json()["model"]["version"] == version
    assert resp.json()["previous"]["source"] == "champion_record"
    (serving_env / "mlflow" / "mlflow.db").unlink()
    for path in (serving_env / "state" / "checkpoints").iterdir():
        path.unlink()
    failed = client.post("/api/model/reload", headers=auth)
    assert failed.status_code == 503 and "still serving the previous model" in failed.json()["detail"]
    assert client.post("/predict", json={"instances": [[3] * 64]}).status_code == 200
    assert TOKEN not in failed.text


def test_tensorrt_is_off_by_default_and_when_asked_for_here_says_what_is_missing(serving_env: Path):
    """TensorRT is optional: never used unless CT_SERVING_TENSORRT is set; on a host without CUDA or
    torch-tensorrt the model is not served and /health/model names the missing piece."""
    from include.ops.settings import ServingSettings
    from model.inference import optimize_for_tensorrt

    assert ServingSettings().tensorrt is False
    with serving_client() as client:
        assert client.get("/health/model").json()["loaded"] is True
    with serving_client(tensorrt=True) as client:
        body = client.get("/health/model").json()
        assert body["loaded"] is False
        assert "TensorRT serving needs a CUDA device" in str(body), body
    with pytest.raises(RuntimeError, match="torch-tensorrt package"):
        optimize_for_tensorrt(torch.nn.Linear(1, 1), torch.device("cuda"))  # no CUDA work before the import
