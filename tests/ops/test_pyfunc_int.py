"""The registered champion (models-from-code pyfunc) predicts on task CSV rows as pandas reads them (int64
pixels), scaled exactly as in training; the README's load-and-predict example runs verbatim on such a store."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.paths import ROOT


@pytest.fixture(scope="module")
def champion_store(tmp_path_factory: pytest.TempPathFactory, manifest: Path) -> Iterator[dict[str, Any]]:
    """One task learned (tiny), registered by ``tracking.register_version`` and gated to ``champion``."""
    from include.ops import tracking
    from include.ops.settings import get_settings
    from model.config import TrainConfig
    from model.learner import ContinualLearner

    root = tmp_path_factory.mktemp("pyfunc")
    var = root / "var"
    (var / "mlflow").mkdir(parents=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CT_VAR_DIR", str(var))
        mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{var / 'mlflow' / 'mlflow.db'}")
        for name in ("CT_MLFLOW_EXPERIMENT", "CT_REGISTERED_MODEL", "CT_DATA_DIR", "CT_STATE_DIR"):
            mp.delenv(name, raising=False)
        settings = get_settings()
        settings.data_dir.mkdir(parents=True)
        shutil.copy(manifest.parent / "task_0.csv", settings.data_dir / "task_0.csv")
        cfg = TrainConfig(epochs=1, max_samples_per_task=64, finetune_epochs=1, device="cpu")
        result = ContinualLearner(manifest, settings.state_dir, train_cfg=cfg).learn_task("task_0").to_dict()
        run = tracking.mlflow_client(settings).create_run(tracking.ensure_experiment(settings))
        version = tracking.register_version(settings, run.info.run_id, result)
        decision = tracking.apply_gate(settings, version, result, retention_threshold=0.8, accuracy_floor=0.0)
        assert decision.alias == "champion"
        yield {
            "root": root,
            "settings": settings,
            "result": result,
            "run_id": run.info.run_id,
            "version": version,
        }


@pytest.fixture(scope="module")
def champion(champion_store: dict[str, Any]):
    """The champion loaded through the registry alias, as a user loads it."""
    import mlflow

    settings = champion_store["settings"]
    return mlflow.pyfunc.load_model(f"models:/{settings.registered_model}@champion")


def _test_rows(settings):
    import pandas as pd

    frame = pd.read_csv(settings.data_dir / "task_0.csv")
    return frame[frame["split"] == "test"].drop(columns=["label", "split"]).reset_index(drop=True)


def test_int64_rows_predict_like_training(champion_store, champion):
    import numpy as np

    from model.data import load_task_csv
    from model.inference import load_model, predict_proba

    settings = champion_store["settings"]
    rows = _test_rows(settings)
    assert set(rows.dtypes.astype(str)) == {"int64"}, "pandas reads the task CSV's pixels as int64"
    probs = champion.predict(rows)
    # the same checkpoint on the training loader's tensors (pixels / 16): identical probabilities
    model, _, meta = load_model(Path(champion_store["result"]["checkpoint_path"]))
    data = load_task_csv(settings.data_dir / "task_0.csv")
    expected = predict_proba(model, data.x_test, allowed_classes=meta.get("classes_seen")).numpy()
    assert probs.shape == (len(rows), 10)
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    # float pixels in the same 0..16 range (e.g. sklearn's digits) give the same answer
    np.testing.assert_allclose(champion.predict(rows.astype("float64")), expected, atol=1e-6)
    np.testing.assert_allclose(champion.predict(rows.astype("int32")), expected, atol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda df: df.assign(f3=17), r"\[0, 16\]"),
        (lambda df: df.assign(f3=-1), r"\[0, 16\]"),
        (lambda df: df.assign(f5="x"), r"must be numbers.*f5"),
        (lambda df: df.assign(f5=True), r"must be numbers.*f5"),
        (lambda df: df.assign(f7=float("nan")), r"finite"),
        (lambda df: df.drop(columns=["f63"]), r"f63"),
    ],
    ids=["above-16", "negative", "text", "bool", "nan", "missing-column"],
)
def test_bad_pixels_are_refused_with_the_reason(champion_store, champion, change, message):
    rows = _test_rows(champion_store["settings"]).head(3)
    with pytest.raises(Exception, match=message):
        champion.predict(change(rows))


def test_pyfunc_is_a_separate_logged_model_as_the_conventions_say(champion_store):
    """docs/conventions.md: MLflow 3 logs the pyfunc as a logged model linked to the run, not run artifacts."""
    from include.ops import tracking

    settings, run_id = champion_store["settings"], champion_store["run_id"]
    mlc = tracking.mlflow_client(settings)
    version = mlc.get_model_version(settings.registered_model, champion_store["version"])
    assert version.source.startswith("models:/m-") and version.run_id == run_id
    logged = mlc.get_logged_model(version.source.removeprefix("models:/"))
    assert logged.source_run_id == run_id
    assert [o.model_id for o in mlc.get_run(run_id).outputs.model_outputs] == [logged.model_id]
    assert "model" not in {a.path for a in mlc.list_artifacts(run_id)}
    files = Path(logged.artifact_location.removeprefix("file://"))
    assert files == settings.var_dir / "mlflow" / "artifacts" / "models" / logged.model_id / "artifacts"
    checkpoint = Path(champion_store["result"]["checkpoint_path"]).name
    for name in ("MLmodel", "pyfunc_model.py", "code/model/inference.py", f"artifacts/{checkpoint}"):
        assert (files / name).is_file(), name
    conventions = (ROOT / "docs" / "conventions.md").read_text()
    assert "the pyfunc model under `model/`" not in conventions
    assert "models/<model id>/artifacts/" in conventions


def _readme_example() -> str:
    """The README's python block that loads the champion."""
    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), flags=re.S)
    found = [b for b in blocks if "pyfunc.load_model" in b]
    assert len(found) == 1, "the README shows one load-and-predict example"
    return found[0]


def test_readme_load_and_predict_example_runs_verbatim(champion_store):
    code = _readme_example()
    assert len([line for line in code.strip().splitlines() if line.strip()]) <= 4  # blank lines aside
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "CT_"))}
    env["PYTHONPATH"] = str(ROOT)
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=champion_store["root"],  # "from the checkout root": var/ is under it
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    labels = re.findall(r"\d+", proc.stdout)
    n_rows = len((champion_store["settings"].data_dir / "task_0.csv").read_text().splitlines()) - 1
    assert len(labels) == n_rows, proc.stdout[-500:]
    assert set(labels) <= {"0", "1"}, "task_0's champion predicts only the classes it learned"
