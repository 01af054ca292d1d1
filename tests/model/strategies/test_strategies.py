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
from tests.model.model_support import tiny


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


def _ctx(
    index: int, classes: tuple[int, ...], past: tuple[tuple[int, ...], ...], scenario="class_incremental"
):
    from model.strategies import TaskContext

    return TaskContext(index, f"t{index}", classes, past, scenario, 10)


def test_class_quotas_split_the_total_budget():
    from model.strategies.replay import class_quotas

    assert class_quotas([0, 1], 100) == {0: 50, 1: 50}
    quotas = class_quotas([3, 1, 2], 100)
    assert sum(quotas.values()) == 100 and sorted(quotas.values()) == [33, 33, 34]


def test_kmeans_medoids_cover_every_cluster():
    from model.strategies.replay import kmeans_medoids

    gen = torch.Generator().manual_seed(0)
    centers = torch.tensor([[0.0] * 4, [5.0] * 4, [-5.0] * 4])
    points = torch.cat([c + 0.1 * torch.randn(20, 4, generator=gen) for c in centers])
    chosen = kmeans_medoids(points, 3, gen)
    assert len(set(chosen.tolist())) == 3
    assert sorted(int(i) // 20 for i in chosen) == [0, 1, 2], "one real sample from each blob"
    assert kmeans_medoids(points[:2], 5, gen).tolist() == [0, 1]


def test_herding_order_is_distinct_and_starts_near_the_mean():
    from model.strategies.replay import herding_order

    feats = torch.tensor([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7], [0.9, 0.1]])
    order = herding_order(feats, 3)
    assert len(set(order.tolist())) == 3 and int(order[0]) == 2


@pytest.mark.parametrize("selection", ["kmeans", "herding"])
def test_replay_appends_exemplars_and_round_trips_its_state(selection: str):
    model = TinyTransformer(ModelConfig())
    cfg = tiny(strategy="replay", replay_budget=10, replay_batch_size=6, replay_selection=selection)
    replay = get_strategy("replay", model, cfg)
    x, y = torch.rand(40, 64), torch.arange(40) % 2
    assert replay.adapt_batch(x[:4], y[:4], _ctx(0, (0, 1), ()))[0].shape == (4, 64), (
        "empty buffer: unchanged"
    )
    replay.after_task(model, _ctx(0, (0, 1), ()), x, y)
    assert replay.stored_exemplars() == 10 and Counter(replay.y[:10].tolist()) == {0: 5, 1: 5}
    bx, by = replay.adapt_batch(x[:4], y[:4], _ctx(1, (2, 3), ((0, 1),)))
    assert bx.shape == (10, 64) and set(by[4:].tolist()) <= {0, 1}
    clone = get_strategy("replay", model, cfg)
    clone.load_state_dict(replay.state_dict())
    assert torch.equal(clone.x, replay.x) and clone.stored_exemplars() == 10
    small = get_strategy("replay", model, tiny(strategy="replay", replay_budget=4))
    with pytest.raises(ValueError, match="over the budget"):
        small.load_state_dict(replay.state_dict())


def test_distillation_loss_is_zero_only_when_outputs_match():
    from model.strategies.lwf import distillation_loss

    teacher = torch.randn(8, 10)
    groups = [torch.tensor([0, 1]), torch.tensor([2, 3])]
    assert float(distillation_loss(teacher.clone(), teacher, groups, 2.0)) == pytest.approx(0.0, abs=1e-6)
    student = teacher.clone()
    student[:, 1] += 3.0
    assert float(distillation_loss(student, teacher, groups, 2.0)) > 0.01
    assert float(distillation_loss(student, teacher, [torch.tensor([2, 3])], 2.0)) == pytest.approx(
        0.0, abs=1e-6
    )


def test_lwf_distils_only_after_the_first_task():
    model = TinyTransformer(ModelConfig())
    lwf = get_strategy("lwf", model, tiny(strategy="lwf"))
    x, y = torch.rand(8, 64), torch.zeros(8, dtype=torch.long)
    lwf.before_task(model, _ctx(0, (0, 1), ()), x, y)
    assert lwf.extra_loss(model, x, y, model(x), _ctx(0, (0, 1), ())) is None
    ctx = _ctx(1, (2, 3), ((0, 1),), "task_incremental")
    lwf.before_task(model, ctx, x, y)
    assert float(lwf.extra_loss(model, x, y, model(x), ctx)) == pytest.approx(0.0, abs=1e-6)
    with torch.no_grad():
        model.head.bias[0] += 2.0
    assert float(lwf.extra_loss(model, x, y, model(x), ctx)) > 0.0


def test_ewc_penalises_moving_important_weights():
    model = TinyTransformer(ModelConfig())
    ewc = get_strategy("ewc", model, tiny(strategy="ewc", ewc_lambda=10.0))
    params = sum(p.numel() * p.element_size() for p in model.parameters())
    assert ewc.memory_bytes() == 2 * params
    x, y = torch.rand(16, 64), torch.arange(16) % 2
    ctx = _ctx(0, (0, 1), ())
    assert ewc.extra_loss(model, x, y, model(x), ctx) is None
    ewc.after_task(model, ctx, x, y)
    assert float(ewc.extra_loss(model, x, y, model(x), ctx)) == 0.0, "no penalty at the anchor"
    with torch.no_grad():
        model.head.weight.add_(0.1)
    assert float(ewc.extra_loss(model, x, y, model(x), ctx)) > 0.0
    assert ewc.memory_bytes() == 2 * params, "online EWC folds tasks into one Fisher"
    clone = get_strategy("ewc", TinyTransformer(ModelConfig()), tiny(strategy="ewc"))
    clone.load_state_dict(ewc.state_dict())
    assert clone.consolidated == 1 and torch.equal(clone.fisher["head.weight"], ewc.fisher["head.weight"])
