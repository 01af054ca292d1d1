"""The continual learner: fixed parameters, trainable backbone, determinism, divergence, resume after kill."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from model.fsio import sha256_file
from model.learner import ContinualLearner
from model.training import LossDivergedError
from tests.model.model_support import tiny


def _weights(learner: ContinualLearner) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in learner.model.state_dict().items()}


def test_parameters_fixed_backbone_trainable(manifest: Path, tmp_path: Path):
    learner = ContinualLearner(manifest, tmp_path, train_cfg=tiny(strategy="naive"))
    before = learner.param_count
    learner.learn_task("task_0")
    after_first = _weights(learner)
    result = learner.learn_task("task_1")
    assert result.param_count == before == learner.model.num_parameters()
    backbone = [k for k in after_first if not k.startswith("head")]
    changed = [k for k in backbone if not torch.equal(after_first[k], learner.model.state_dict()[k])]
    assert len(changed) > len(backbone) // 2, "the backbone keeps learning on the second task"
    assert len(result.acc_matrix) == 2 and result.acc_matrix[0][1] is None
    assert result.task_ids == ["task_0", "task_1"] and result.epoch_losses


def test_same_seed_same_weights(manifest: Path, tmp_path: Path):
    a = ContinualLearner(manifest, tmp_path / "a", train_cfg=tiny(seed=3))
    b = ContinualLearner(manifest, tmp_path / "b", train_cfg=tiny(seed=3))
    a.learn_task("task_0")
    b.learn_task("task_0")
    for key, value in _weights(a).items():
        assert torch.equal(value, b.model.state_dict()[key]), key


def test_divergence_stops_the_task_and_keeps_the_last_good_checkpoint(
    manifest: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    learner = ContinualLearner(manifest, tmp_path, train_cfg=tiny(strategy="naive"))
    good = Path(learner.learn_task("task_0").checkpoint_path)
    digest, state = sha256_file(good), (tmp_path / "learner_state.json").read_bytes()
    bad = ContinualLearner(manifest, tmp_path, train_cfg=tiny(strategy="naive", inject_nan_at_step=1))
    with caplog.at_level(logging.ERROR, logger="model.training"), pytest.raises(LossDivergedError):
        bad.learn_task("task_1")
    assert any("loss diverged" in r.getMessage() for r in caplog.records)
    assert sha256_file(good) == digest and (tmp_path / "learner_state.json").read_bytes() == state
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [good.name, good.name + ".sha256"]
    assert bad.learned_tasks == ["task_0"]


def test_task_incremental_scores_at_least_class_incremental(manifest: Path, tmp_path: Path):
    """Also: a checkpoint re-measured later (backup, restore drill) under its own scenario gives training's numbers."""
    from include.ops.backup.evaluate import task_accuracies

    results = {}
    for scenario in ("class_incremental", "task_incremental"):
        learner = ContinualLearner(
            manifest, tmp_path / scenario, train_cfg=tiny(strategy="naive", scenario=scenario)
        )
        learner.learn_task("task_0")
        result = learner.learn_task("task_1")
        results[scenario] = result.accuracies["task_0"]
        measured = task_accuracies(Path(result.checkpoint_path), manifest)
        assert {t: measured[t] for t in result.task_ids} == result.accuracies, scenario
    assert results["task_incremental"] >= results["class_incremental"]


def test_learned_or_unknown_task_is_refused(manifest: Path, tmp_path: Path):
    learner = ContinualLearner(manifest, tmp_path, train_cfg=tiny())
    learner.learn_task("task_0")
    with pytest.raises(ValueError, match="already learned"):
        learner.learn_task("task_0")
    with pytest.raises(ValueError, match="task_9"):
        learner.learn_task("task_9")


KILL_SCRIPT = """
import os, signal, sys
from model.learner import ContinualLearner
from model.config import TrainConfig
cfg = TrainConfig(**{cfg!r})
learner = ContinualLearner({manifest!r}, {state!r}, train_cfg=cfg)
learner.learn_task("task_0")
print("TASK0_DONE", flush=True)
def die(epoch, loss):
    os.kill(os.getpid(), signal.SIGKILL)  # killed mid-task, as by the OOM killer
learner.learn_task("task_1", on_epoch_end=die)
"""


def test_killed_mid_task_resumes_from_last_completed_task(manifest: Path, tmp_path: Path):
    cfg = {"epochs": 2, "max_samples_per_task": 96, "finetune_epochs": 1, "strategy": "replay"}
    killed, clean = tmp_path / "killed", tmp_path / "clean"
    code = KILL_SCRIPT.format(cfg=cfg, manifest=str(manifest), state=str(killed))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    assert "TASK0_DONE" in proc.stdout
    assert not list((killed / "checkpoints").glob("*.tmp*")), "no partial checkpoint promoted"

    resumed = ContinualLearner(manifest, killed, train_cfg=tiny(**cfg))
    assert resumed.learned_tasks == ["task_0"]
    assert resumed.resumed_from is not None and resumed.resumed_from.name.startswith("task_000")
    after_resume = resumed.learn_task("task_1")

    reference = ContinualLearner(manifest, clean, train_cfg=tiny(**cfg))
    reference.learn_task("task_0")
    uninterrupted = reference.learn_task("task_1")
    for task, acc in uninterrupted.accuracies.items():
        assert after_resume.accuracies[task] == pytest.approx(acc, abs=0.02), task
    for key, value in _weights(reference).items():
        assert torch.allclose(value, resumed.model.state_dict()[key], atol=1e-4), key


def test_checkpoint_and_state_file_hold_everything_to_resume(manifest: Path, tmp_path: Path):
    import json

    from model.checkpoint import load_checkpoint

    learner = ContinualLearner(manifest, tmp_path, train_cfg=tiny(strategy="replay"))
    learner.learn_task("task_0")
    result = learner.learn_task("task_1")
    assert Path(result.checkpoint_path).name == "task_001_task_1.pt"
    payload = load_checkpoint(Path(result.checkpoint_path))  # weights_only=True inside
    for key in ("model_state", "optimizer_state", "strategy_state", "task_index", "learned_tasks", "acc_matrix",
                "rng_state", "model_config", "train_config"):  # fmt: skip
        assert key in payload, key
    assert payload["task_index"] == 1 and payload["learned_tasks"] == ["task_0", "task_1"]
    assert payload["optimizer_state"]["state"], "optimizer moments are saved"
    state = json.loads((tmp_path / "learner_state.json").read_text())
    assert state["learned_tasks"] == ["task_0", "task_1"] and state["acc_matrix"] == result.acc_matrix
    for entry in state["checkpoints"]:
        assert sha256_file(Path(entry["path"])) == entry["sha256"]
    assert state["latest_sha256"] == result.checkpoint_sha256
    assert json.loads(json.dumps(result.to_dict()))["task_ids"] == ["task_0", "task_1"]


def test_corrupted_latest_checkpoint_falls_back_to_the_previous_one(
    manifest: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
):
    learner = ContinualLearner(manifest, tmp_path, train_cfg=tiny(strategy="naive"))
    learner.learn_task("task_0")
    latest = Path(learner.learn_task("task_1").checkpoint_path)
    latest.write_bytes(latest.read_bytes()[:-20])  # torn/corrupted file: its sha256 no longer matches
    with caplog.at_level(logging.WARNING, logger="model.training"):
        resumed = ContinualLearner(manifest, tmp_path, train_cfg=tiny(strategy="naive"))
    assert resumed.learned_tasks == ["task_0"] and resumed.skipped_checkpoints == [str(latest)]
    assert any(latest.name in r.getMessage() for r in caplog.records)
    resumed.learn_task("task_2")
    names = sorted(p.name for p in (tmp_path / "checkpoints").glob("*.pt*"))
    assert "task_001_task_1.pt.orphaned" in names and "task_001_task_2.pt" in names
    assert ContinualLearner(manifest, tmp_path).learned_tasks == ["task_0", "task_2"]


def test_capacity_and_strategy_are_fixed_for_a_state_dir(manifest: Path, tmp_path: Path):
    from model.config import ModelConfig

    learner = ContinualLearner(
        manifest, tmp_path, model_cfg=ModelConfig(max_tasks=1), train_cfg=tiny(strategy="naive")
    )
    learner.learn_task("task_0")
    with pytest.raises(ValueError, match="capacity"):
        learner.learn_task("task_1")
    with pytest.raises(ValueError, match="strategy"):
        ContinualLearner(manifest, tmp_path, train_cfg=tiny(strategy="replay"))
    with pytest.raises(ValueError, match="model_cfg"):
        ContinualLearner(
            manifest, tmp_path, model_cfg=ModelConfig(max_tasks=2), train_cfg=tiny(strategy="naive")
        )
