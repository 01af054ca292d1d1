"""Strategies as plugins: fixed memory budgets, class-balanced replay, registry errors."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from model.config import ModelConfig
from model.learner import ContinualLearner
from model.network import TinyTransformer
from model.strategies import STRATEGIES, get_strategy
from tests.model.conftest import tiny


def test_registry_names_and_unknown():
    assert set(STRATEGIES) >= {"naive", "replay", "lwf", "ewc"}
    with pytest.raises(ValueError, match="unknown strategy 'foo'"):
        get_strategy("foo", TinyTransformer(ModelConfig()), tiny())


def test_replay_buffer_is_budgeted_class_balanced_and_fixed(manifest: Path, tmp_path: Path):
    learner = ContinualLearner(manifest, tmp_path, train_cfg=tiny(strategy="replay", replay_budget=20))
    sizes = []
    for task in ("task_0", "task_1", "task_2"):
        result = learner.learn_task(task)
        sizes.append(result.strategy_memory_bytes)
        counts = Counter(learner.strategy.y[: learner.strategy.size].tolist())
        assert result.stored_exemplars == learner.strategy.size <= 20
        assert set(counts) == {c for t in learner.task_classes for c in t}, "every seen class is kept"
        assert max(counts.values()) - min(counts.values()) <= 1, f"class-balanced: {counts}"
    assert len(set(sizes)) == 1, f"memory budget must not grow with tasks: {sizes}"
    assert learner.model.num_parameters() == learner.param_count


@pytest.mark.parametrize("name", ["lwf", "ewc"])
def test_exemplar_free_memory_is_fixed_and_stores_no_data(name: str, manifest: Path, tmp_path: Path):
    learner = ContinualLearner(manifest, tmp_path, train_cfg=tiny(strategy=name))
    first = learner.learn_task("task_0")
    second = learner.learn_task("task_1")
    assert first.stored_exemplars == second.stored_exemplars == 0
    assert second.strategy_memory_bytes == first.strategy_memory_bytes or first.strategy_memory_bytes == 0
    assert second.strategy_memory_bytes > 0, f"{name} keeps a teacher/Fisher after a task"


def test_regularisers_change_the_loss_on_task_two(manifest: Path, tmp_path: Path):
    """With the same seed, naive and lwf/ewc start task 2 identically but end with different weights."""
    finals = {}
    for name in ("naive", "lwf", "ewc"):
        learner = ContinualLearner(manifest, tmp_path / name, train_cfg=tiny(strategy=name))
        learner.learn_task("task_0")
        learner.learn_task("task_1")
        finals[name] = torch.cat([p.detach().flatten() for p in learner.model.parameters()])
    assert not torch.allclose(finals["naive"], finals["lwf"])
    assert not torch.allclose(finals["naive"], finals["ewc"])
