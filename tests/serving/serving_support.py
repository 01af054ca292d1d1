"""Helpers shared by the serving, monitoring and maintenance tests (imported by their conftest files)."""

from __future__ import annotations

import atexit
import contextlib
import functools
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

TOKEN = "test-token-0123456789"


def learn_state(root: Path) -> Path:
    """Learn task_0 and task_1 of Split-Digits into ``root/state`` (tiny budget: seconds on CPU); returns root."""
    from model.config import TrainConfig
    from model.data import write_split_digits
    from model.learner import ContinualLearner

    manifest = write_split_digits(root / "data")
    learner = ContinualLearner(
        manifest, root / "state", train_cfg=TrainConfig(epochs=1, max_samples_per_task=64, finetune_epochs=0)
    )
    learner.learn_task("task_0")
    learner.learn_task("task_1")
    return root


@functools.cache
def learned_once() -> Path:
    """``learn_state`` run once per test session (in a temp folder), shared by every test folder."""
    root = Path(tempfile.mkdtemp(prefix="ct-learned-"))
    atexit.register(shutil.rmtree, root, True)
    return learn_state(root)


def install_state(learned: Path, var: Path, champion: bool = True) -> None:
    """Copy a learned state and its task stream into a ct_env var/ folder (default locations); with
    ``champion``, record the newest checkpoint as the last champion, as the training gate does when it passes."""
    shutil.copytree(learned / "state", var / "state")
    shutil.copytree(learned / "data", var / "data" / "split_digits")
    if champion:
        record_champion(var, checkpoints(var / "state")[0])


def record_champion(var: Path, checkpoint: Path, version: str = "1") -> None:
    """Write ``<var>/state/champion.json`` for ``checkpoint`` (what ``tracking.apply_gate`` writes on a pass)."""
    from include.ops.champion_record import write_champion_record
    from include.ops.settings import Settings
    from model.fsio import sha256_file

    settings = Settings(var_dir=var, state_dir=var / "state")
    write_champion_record(
        settings, version, checkpoint, sha256_file(checkpoint), checkpoint.stem.split("_", 2)[-1]
    )


@contextlib.contextmanager
def serving_client(**overrides: object) -> Iterator:
    """A TestClient over a fresh app (lifespan run: model loaded, batcher started); health thresholds at
    100% unless overridden, so the shared CPU's load never degrades it."""
    from fastapi.testclient import TestClient

    from include.ops.settings import ServingSettings
    from include.serving.app import create_app

    settings = ServingSettings(
        **{"api_token": TOKEN, "degraded_pct": 100.0, "unhealthy_pct": 100.0, **overrides}
    )
    with TestClient(create_app(settings)) as client:
        yield client


@functools.cache
def empty_mlflow_db() -> Path:
    """An empty, fully migrated MLflow SQLite store, made once per session (migrations take seconds)."""
    from mlflow import MlflowClient

    folder = Path(tempfile.mkdtemp(prefix="ct-mlflow-template-"))
    atexit.register(shutil.rmtree, folder, True)
    db = folder / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{db}").search_experiments()
    return db


def checkpoints(state_dir: Path) -> list[Path]:
    """Checkpoint files of a state folder, newest task first."""
    return sorted((state_dir / "checkpoints").glob("task_*.pt"), reverse=True)


def register_champion(var: Path, checkpoint: Path, sha256: str | None = None, retention: float = 0.93) -> str:
    """Create the MLflow registry entry the training DAG would: version tags + ``champion`` alias."""
    from mlflow import MlflowClient

    from model.checkpoint import sha256_file

    db = var / "mlflow" / "mlflow.db"
    if not db.exists():
        shutil.copyfile(empty_mlflow_db(), db)
    mlc = MlflowClient(tracking_uri=f"sqlite:///{db}")
    name = "continual-tiny-transformer"
    if not mlc.search_registered_models(filter_string=f"name = '{name}'"):
        mlc.create_registered_model(name)
    mv = mlc.create_model_version(
        name,
        source=checkpoint.parent.as_uri(),
        tags={
            "checkpoint_path": str(checkpoint),
            "checkpoint_sha256": sha256 or sha256_file(checkpoint),
            "mean_retention": str(retention),
        },
    )
    mlc.set_registered_model_alias(name, "champion", mv.version)
    return str(mv.version)
