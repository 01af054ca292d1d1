"""The analytic strategy: closed-form head == joint ridge regression, masking, state, checksum, unlearning."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from model.checkpoint import load_checkpoint
from model.config import ModelConfig, TrainConfig
from model.inference import load_model, predict_proba
from model.learner import ContinualLearner
from model.network import TinyTransformer
from model.seeding import seed_everything
from model.strategies import UnlearningRefused
from model.strategies.analytic import joint_ridge_head

TASKS = ("task_0", "task_1", "task_2")


def small_model(**overrides) -> ModelConfig:
    """A narrow expansion (256 features) so each solve takes milliseconds."""
    return ModelConfig(**{"expansion_dim": 256, "expansion_seed": 3, **overrides})


def learn(manifest: Path, state: Path, tasks=TASKS, **train) -> ContinualLearner:
    learner = ContinualLearner(
        manifest, state, model_cfg=small_model(), train_cfg=TrainConfig(strategy="analytic", **train)
    )
    for task_id in tasks:
        learner.learn_task(task_id)
    return learner


@pytest.fixture(scope="module")
def learned(manifest: Path, tmp_path_factory: pytest.TempPathFactory) -> ContinualLearner:
    """Three tasks learned once per module (class-incremental)."""
    return learn(manifest, tmp_path_factory.mktemp("analytic") / "state")


def _all_test(learner: ContinualLearner, tasks) -> tuple[torch.Tensor, torch.Tensor]:
    data = [learner.task_data(t) for t in tasks]
    return torch.cat([d.x_test for d in data]), torch.cat([d.y_test for d in data])


def test_head_after_last_task_equals_joint_ridge(learned: ContinualLearner):
    tasks = [(t, learned.task_data(t).x_train, learned.task_data(t).y_train) for t in TASKS]
    joint = joint_ridge_head(learned.model, tasks, seed=0)  # (D+1, K)
    head = torch.cat([learned.model.head.weight.T, learned.model.head.bias[None]])
    assert head.dtype == torch.float64
    assert (head - joint).abs().max() < 1e-9
    x, _ = _all_test(learned, TASKS)
    with torch.no_grad():
        phi = learned.model.expansion(learned.model.features(x)).double()
        joint_logits = torch.cat([phi, torch.ones(len(phi), 1, dtype=phi.dtype)], 1) @ joint
        seen = learned.model.active_classes
        joint_pred = joint_logits.masked_fill(~seen, float("-inf")).argmax(1)
        assert torch.equal(learned.model(x).argmax(1), joint_pred)


def test_no_sgd_exemplar_free_and_fixed_memory(learned: ContinualLearner, manifest: Path, tmp_path: Path):
    seed_everything(0)
    fresh = TinyTransformer(learned.model_cfg)  # what the learner built: the body stays exactly so
    learned_state = learned.model.state_dict()
    body = [k for k in fresh.state_dict() if not k.startswith(("head.", "active_classes"))]
    assert body and all(torch.equal(learned_state[k], fresh.state_dict()[k]) for k in body)
    assert learned.param_count == fresh.num_parameters()
    one = learn(manifest, tmp_path / "one", tasks=("task_0",))
    assert one.strategy.memory_bytes() == learned.strategy.memory_bytes()  # independent of the task count
    assert learned.strategy.stored_exemplars() == 0
    d, k = 257, 10
    assert learned.strategy.memory_bytes() == 2 * d * d * 8 + 2 * d * k * 8 + k * 8


def test_classes_not_learned_are_never_predicted(manifest: Path, tmp_path: Path):
    learner = learn(manifest, tmp_path / "s", tasks=("task_0",))
    x, _ = _all_test(learner, ("task_0", "task_1", "task_2", "task_3", "task_4"))
    with torch.no_grad():
        assert set(learner.model(x).argmax(1).tolist()) <= {0, 1}
        assert not learner.model.head.weight[2:].any()  # unlearned classes' columns are exactly zero ...
        learner.model.head.bias[:2] -= 10.0  # ... so with every learned logit below 0 they would win unmasked
        assert set(learner.model(x).argmax(1).tolist()) <= {0, 1}
        learner.model.active_classes[:] = True
        assert set(learner.model(x).argmax(1).tolist()) - {0, 1}  # the mask is what keeps them out


def test_checkpoint_round_trip_and_served_model(learned: ContinualLearner, manifest: Path):
    payload = load_checkpoint(learned.latest_checkpoint)  # weights_only, sha256 verified
    state = payload["strategy_state"]
    assert state["gram"].dtype == torch.float64 and state["gram"].shape == (257, 257)
    assert "expansion.weight" not in payload["model_state"]  # regenerated from the seed, not stored
    resumed = ContinualLearner(manifest, learned.state_dir, train_cfg=TrainConfig(strategy="analytic"))
    x, _ = _all_test(learned, TASKS)
    model, _, meta = load_model(learned.latest_checkpoint)
    assert meta["strategy"] == "analytic"
    with torch.no_grad():
        assert torch.equal(model(x), learned.model(x))
        assert torch.equal(resumed.model(x), learned.model(x))
    assert torch.equal(predict_proba(model, x).argmax(1), learned.model(x).argmax(1))
    for key in ("gram", "cross", "counts"):
        assert torch.equal(resumed.strategy.stats[key].cpu(), learned.strategy.stats[key].cpu())


def test_a_different_expansion_is_refused_on_load(learned: ContinualLearner):
    state = learned.model.state_dict()
    state["expansion.sha256"] = torch.zeros_like(state["expansion.sha256"])
    with pytest.raises(RuntimeError, match="random expansion regenerated from its seed"):
        TinyTransformer(learned.model_cfg).load_state_dict(state)


def test_task_incremental_masks_to_the_task(manifest: Path, tmp_path: Path):
    learner = learn(manifest, tmp_path / "til", tasks=("task_0", "task_1"), scenario="task_incremental")
    result = learner.evaluate()
    assert min(result.values()) >= 0.97


def test_unlearning_equals_the_stream_learned_without_the_task(
    learned: ContinualLearner, manifest: Path, tmp_path: Path
):
    shutil.copytree(learned.state_dir, tmp_path / "full")
    full = ContinualLearner(manifest, tmp_path / "full", train_cfg=TrainConfig(strategy="analytic"))
    result = full.unlearn_task("task_1")
    scratch = learn(manifest, tmp_path / "scratch", tasks=("task_0", "task_2"))
    head = torch.cat([full.model.head.weight.T, full.model.head.bias[None]])
    want = torch.cat([scratch.model.head.weight.T, scratch.model.head.bias[None]])
    assert (head - want).abs().max() < 1e-6
    assert result.task_ids == ["task_0", "task_2"] and full.learned_tasks == ["task_0", "task_2"]
    x, _ = _all_test(full, ("task_0", "task_2"))
    with torch.no_grad():
        assert torch.equal(full.model(x).argmax(1), scratch.model(x).argmax(1))
        everything, _ = _all_test(full, ("task_0", "task_1", "task_2", "task_3", "task_4"))
        assert not set(full.model(everything).argmax(1).tolist()) & {2, 3}
    # the removal is durable: a restart loads it, and the task is refused for learning again
    again = ContinualLearner(manifest, tmp_path / "full", train_cfg=TrainConfig(strategy="analytic"))
    assert again.learned_tasks == ["task_0", "task_2"]
    with pytest.raises(ValueError, match="was unlearned"):
        again.learn_task("task_1")
    assert again.learn_task("task_3").task_ids == ["task_0", "task_2", "task_3"]
    model, _, meta = load_model(again.latest_checkpoint)
    assert meta["learned_tasks"] == ["task_0", "task_2", "task_3"]


def test_unlearning_refusals(learned: ContinualLearner, manifest: Path, tmp_path: Path):
    shutil.copytree(learned.state_dir, tmp_path / "full")
    full = ContinualLearner(manifest, tmp_path / "full", train_cfg=TrainConfig(strategy="analytic"))
    with pytest.raises(UnlearningRefused, match="not learned"):
        full.unlearn_task("task_4")
    naive = ContinualLearner(
        manifest,
        tmp_path / "naive",
        train_cfg=TrainConfig(strategy="naive", epochs=1, max_samples_per_task=32),
    )
    naive.learn_task("task_0")
    naive.learn_task("task_1")
    with pytest.raises(UnlearningRefused, match="cannot unlearn a task exactly"):
        naive.unlearn_task("task_0")


def test_unlearning_refuses_a_changed_file(learned: ContinualLearner, manifest: Path, tmp_path: Path):
    data = tmp_path / "data"
    shutil.copytree(manifest.parent, data)
    learner = learn(data / manifest.name, tmp_path / "s", tasks=("task_0", "task_1"))
    file = data / "task_1.csv"
    file.write_bytes(file.read_bytes() + b"\n")
    with pytest.raises(UnlearningRefused, match="was learned from"):
        learner.unlearn_task("task_1")
    file.unlink()
    with pytest.raises(UnlearningRefused, match="is gone"):
        learner.unlearn_task("task_1")
    assert learner.learned_tasks == ["task_0", "task_1"]
