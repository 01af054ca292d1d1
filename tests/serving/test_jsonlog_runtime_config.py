"""JSON-lines logging shared by app and training, and the runtime override files."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from include.ops import runtime_config
from include.ops.jsonlog import configure_json_logging, remove_json_logging


@pytest.fixture
def log_dir(ct_env: Path):
    yield ct_env / "logs"
    remove_json_logging()


def test_json_lines_with_fields_extras_and_redaction(log_dir: Path):
    path = configure_json_logging("training")
    assert path == (log_dir / "training.log").resolve()
    assert configure_json_logging("training") == path  # idempotent: one handler
    log = logging.getLogger("model.training")
    log.info("learned %s", "task_0", extra={"task_id": "task_0", "api_token": "abc123"})
    log.error("call failed with Authorization: Bearer sk-live-123456 and password=hunter2")
    try:
        raise ValueError("bad token=zzz")
    except ValueError:
        log.exception("crashed")
    records = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(records) == 3
    first = records[0]
    assert {"ts", "level", "logger", "component", "message"} <= set(first)
    assert (first["level"], first["logger"], first["component"]) == ("INFO", "model.training", "training")
    assert first["message"] == "learned task_0" and first["task_id"] == "task_0"
    assert first["api_token"] == "***"
    text = path.read_text()
    for secret in ("abc123", "sk-live-123456", "hunter2", "zzz"):
        assert secret not in text
    assert records[2]["exc"].startswith("Traceback") and records[2]["level"] == "ERROR"


def test_two_components_write_two_files(log_dir: Path):
    configure_json_logging("app")
    configure_json_logging("training")
    logging.getLogger("x").warning("both")
    assert {p.name for p in log_dir.iterdir()} == {"app.log", "training.log"}
    assert all("both" in p.read_text() for p in log_dir.iterdir())


def test_bad_component_name_is_refused(ct_env: Path):
    with pytest.raises(ValueError, match="component"):
        configure_json_logging("../escape")


def test_train_overrides_round_trip_and_validation(ct_env: Path):
    assert runtime_config.load_train_overrides() == {}
    runtime_config.set_train_overrides({"batch_size": 8})
    runtime_config.set_train_overrides({"lr": 0.001})
    assert runtime_config.load_train_overrides() == {"batch_size": 8, "lr": 0.001}
    assert runtime_config.effective_train_config()["batch_size"] == 8
    with pytest.raises(ValueError, match="batch_size"):
        runtime_config.set_train_overrides({"batch_size": 0})
    with pytest.raises(ValueError, match="unknown TrainConfig key: 'nope'"):
        runtime_config.set_train_overrides({"nope": 1})
    assert runtime_config.load_train_overrides() == {"batch_size": 8, "lr": 0.001}  # refused ones not stored


def test_corrupt_override_file_names_the_file(ct_env: Path):
    path = runtime_config.config_dir() / runtime_config.TRAIN_OVERRIDES_FILE
    path.parent.mkdir(parents=True)
    path.write_text("{half")
    with pytest.raises(ValueError, match="train_overrides.json"):
        runtime_config.load_train_overrides()
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="JSON object"):
        runtime_config.load_train_overrides()


def test_model_overrides_are_checked_against_model_config(ct_env: Path):
    runtime_config.set_model_overrides({"d_model": 48})
    assert runtime_config.load_model_overrides() == {"d_model": 48}
    with pytest.raises(ValueError, match="d_model"):
        runtime_config.set_model_overrides({"d_model": 65})


@pytest.mark.parametrize(
    ("changes", "field", "match"),
    [
        ({"d_model": 100_000_000}, "d_model", "parameter budget"),
        ({"d_model": 96}, "d_model", "parameter budget"),  # 167k parameters with the default 10-class head
        ({"n_layers": 10**9}, "n_layers", "parameter budget"),
        ({"dropout": float("nan")}, "dropout", "finite"),
        ({"dropout": 1.5}, "dropout", r"\[0, 1\)"),
        ({"mlp_ratio": 0}, "mlp_ratio", ">= 1"),
        ({"patch_size": 0}, "patch_size", ">= 1"),
    ],
)
def test_model_overrides_respect_bounds_and_the_parameter_budget(ct_env: Path, changes, field, match):
    with pytest.raises(runtime_config.ConfigFieldError, match=match) as info:
        runtime_config.set_model_overrides(changes)
    assert info.value.field == field
    assert runtime_config.load_model_overrides() == {}
