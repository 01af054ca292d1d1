"""The served checkpoint stays verified (size+mtime every probe, sha256 periodically), the app follows the
registry's champion, CPU load is no model fault, and the fallback serves only what passed the gate."""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.serving.serving_support import checkpoints, record_champion, register_champion, serving_client


def _flip_a_byte_keeping_size_and_mtime(path: Path) -> None:
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_served_file_corrupted_in_place_degrades_health(serving_env: Path):
    newest = checkpoints(serving_env / "state")[0]
    register_champion(serving_env, newest)
    with serving_client(verify_hash_interval_s=0, champion_poll_s=0) as client:
        assert client.get("/health/model").json()["status"] == "healthy"
        _flip_a_byte_keeping_size_and_mtime(newest)  # only the hash can tell
        body = client.get("/health/model").json()
        assert body["status"] == "degraded", body
        assert any("task_001_task_1.pt sha256" in issue for issue in body["issues"])
        assert client.get("/health/all").json()["status"] == "degraded"


def test_a_touched_served_file_degrades_before_the_next_hash(serving_env: Path):
    newest = checkpoints(serving_env / "state")[0]
    register_champion(serving_env, newest)
    with serving_client(verify_hash_interval_s=3600, champion_poll_s=0) as client:
        assert client.get("/health/model").json()["status"] == "healthy"
        newest.write_bytes(newest.read_bytes() + b"\0")
        issues = client.get("/health/model").json()["issues"]
        assert any("changed on disk since it was loaded" in issue for issue in issues), issues


def test_the_app_follows_the_champion_alias(serving_env: Path):
    newest, older = checkpoints(serving_env / "state")
    register_champion(serving_env, older)
    with serving_client(champion_poll_s=0) as client:
        store = client.app.state.store
        assert client.get("/health/model").json()["served_version"] == "1"
        assert store.follow_champion() is False  # nothing moved
        register_champion(serving_env, newest, sha256="0" * 64)  # v2, whose file does not match its tag
        assert store.follow_champion() is False
        body = client.get("/health/model").json()
        assert (body["served_version"], body["registry_version"], body["status"]) == ("1", "2", "degraded")
        assert "registry champion is v2, serving v1 (registry)" in body["issues"]
        register_champion(serving_env, newest)  # v3, good
        assert store.follow_champion() is True
        body = client.get("/health/model").json()
        assert (body["served_version"], body["registry_version"], body["status"]) == ("3", "3", "healthy")
        assert body["task_id"] == "task_1"


def test_the_champion_poll_runs_in_the_background(serving_env: Path):
    newest, older = checkpoints(serving_env / "state")
    register_champion(serving_env, older)
    with serving_client(champion_poll_s=0.05) as client:
        register_champion(serving_env, newest)
        deadline = time.monotonic() + 30
        while client.get("/health/model").json()["served_version"] != "2":  # a condition, not a clock
            assert time.monotonic() < deadline, "the poll never followed the alias"
            time.sleep(0.05)


def test_host_cpu_over_the_threshold_is_a_system_warning_not_a_degraded_model(serving_env, monkeypatch):
    import include.serving.health as health

    register_champion(serving_env, checkpoints(serving_env / "state")[0])
    monkeypatch.setattr(health.psutil, "cpu_percent", lambda interval=None: 99.0)
    with serving_client(degraded_pct=90.0, unhealthy_pct=100.0) as client:
        assert client.get("/health/model").json()["status"] == "healthy"
        body = client.get("/health/all").json()
        assert body["checks"]["system"]["warnings"] == ["cpu 99% > 90%"]
        assert body["warnings"] == ["system: cpu 99% > 90%"]
        assert not any("cpu" in issue for issue in body.get("issues", []))
        assert body["checks"]["model"]["status"] == "healthy"


def test_without_registry_or_record_nothing_is_served_even_if_checkpoints_verify(serving_env: Path):
    (serving_env / "state" / "champion.json").unlink()
    with serving_client() as client:
        resp = client.get("/health/model")
        assert resp.status_code == 503 and resp.json()["loaded"] is False
        assert "no local champion record (champion.json)" in resp.json()["errors"][0]
        assert client.post("/predict", json={"instances": [[0] * 64]}).status_code == 503


def test_the_fallback_serves_the_recorded_champion_not_the_newest_checkpoint(serving_env: Path):
    newest, older = checkpoints(serving_env / "state")  # task_1 never passed the gate here
    record_champion(serving_env, older, version="7")
    with serving_client() as client:
        body = client.get("/health/model").json()
        assert (body["source"], body["served_version"], body["task_id"]) == ("champion_record", "7", "task_0")
        assert body["checkpoint_path"] == f"checkpoints/{older.name}"


def test_a_garbled_record_is_refused_by_name(serving_env: Path):
    (serving_env / "state" / "champion.json").write_text("{half")
    with serving_client() as client:
        errors = client.get("/health/model").json()["errors"]
        assert "champion.json is not valid JSON" in errors[0]


def test_the_gate_records_the_champion_atomically_where_it_moves_the_alias(ct_env: Path):
    from include.ops import tracking
    from include.ops.champion_record import read_champion_record
    from include.ops.settings import get_settings
    from tests.serving.serving_support import empty_mlflow_db

    (ct_env / "mlflow").mkdir(parents=True, exist_ok=True)
    shutil.copyfile(empty_mlflow_db(), ct_env / "mlflow" / "mlflow.db")
    settings = get_settings()
    ckpt = settings.checkpoint_dir / "task_000_task_0.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"weights")
    mlc = tracking.mlflow_client(settings)
    mlc.create_registered_model(settings.registered_model)
    versions = [mlc.create_model_version(settings.registered_model, source=ckpt.parent.as_uri()).version
                for _ in range(2)]  # fmt: skip
    result = {"task_id": "task_0", "task_ids": ["task_0"], "accuracies": {"task_0": 0.95},
              "checkpoint_path": str(ckpt), "checkpoint_sha256": "a" * 64, "mean_retention": None}  # fmt: skip
    assert tracking.apply_gate(settings, str(versions[0]), result, 0.8, 0.9).passed
    record = read_champion_record(settings)
    assert (record.version, record.checkpoint, record.sha256) == (str(versions[0]), "checkpoints/task_000_task_0.pt",
                                                                   "a" * 64)  # fmt: skip
    failing = {**result, "accuracies": {"task_0": 0.5}, "checkpoint_sha256": "b" * 64}
    assert not tracking.apply_gate(settings, str(versions[1]), failing, 0.8, 0.9).passed
    assert read_champion_record(settings).version == str(versions[0])  # a failed gate leaves the record
    # no temp files: the champion record and the alias history's local mirror beside the checkpoints
    assert sorted(p.name for p in settings.state_dir.iterdir()) == [
        "alias_history.jsonl",
        "champion.json",
        "checkpoints",
    ]
    assert json.loads((settings.state_dir / "champion.json").read_text())["task_id"] == "task_0"


@pytest.mark.parametrize("sha", ["short", "A" * 64])
def test_the_record_refuses_a_malformed_sha256(ct_env: Path, sha: str):
    from include.ops.champion_record import write_champion_record
    from include.ops.settings import get_settings

    with pytest.raises(ValueError, match="64 lowercase hex"):
        write_champion_record(get_settings(), "1", ct_env / "state" / "x.pt", sha)
