"""The training loop on its own: accumulation, logging, LR schedule, masking, divergence, device choice."""

from __future__ import annotations

import logging

import pytest
import torch

from model.config import ModelConfig, TrainConfig
from model.network import TinyTransformer
from model.strategies import TaskContext, get_strategy
from model.training import (
    LossDivergedError,
    autocast,
    lr_at,
    make_optimizer,
    resolve_device,
    train_task,
)

CTX = TaskContext(0, "t", (0, 1), (), "class_incremental", 10)


def _data(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(0)
    return torch.rand(n, 64, generator=gen), torch.randint(0, 2, (n,), generator=gen)


def _train(cfg: TrainConfig, **kwargs) -> tuple[TinyTransformer, list[float]]:
    torch.manual_seed(0)
    model = TinyTransformer(ModelConfig())
    x, y = _data()
    losses = train_task(
        model, make_optimizer(model, cfg), get_strategy("naive", model, cfg), x, y, CTX, cfg, torch.device("cpu"),
        **kwargs,
    )  # fmt: skip
    return model, losses


def test_gradient_accumulation_matches_the_big_batch():
    """Two micro-batches of 16 accumulated = one batch of 32: same data order, same updates."""
    big, _ = _train(TrainConfig(strategy="naive", epochs=2, batch_size=32))
    accumulated, _ = _train(TrainConfig(strategy="naive", epochs=2, batch_size=16, grad_accum_steps=2))
    other, _ = _train(TrainConfig(strategy="naive", epochs=2, batch_size=16))
    for (name, p), q in zip(big.named_parameters(), accumulated.parameters(), strict=True):
        assert torch.allclose(p, q, atol=1e-5), name
    assert any(
        not torch.allclose(p, r, atol=1e-5) for p, r in zip(big.parameters(), other.parameters(), strict=True)
    )


def test_progress_is_logged_every_n_steps(caplog: pytest.LogCaptureFixture):
    calls = []
    with caplog.at_level(logging.INFO, logger="model.training"):
        _, losses = _train(
            TrainConfig(strategy="naive", epochs=3, batch_size=16, log_every=2),
            on_epoch_end=lambda epoch, loss: calls.append((epoch, loss)),
        )
    steps = [r for r in caplog.records if r.name == "model.training" and " step " in r.getMessage()]
    assert len(steps) == 3 * 4 // 2, "64 rows / 16 = 4 steps per epoch, logged every 2nd"
    assert [c[0] for c in calls] == [0, 1, 2] and [c[1] for c in calls] == losses
    assert losses[-1] < losses[0]


def test_nan_loss_raises_and_logs_before_stepping(caplog: pytest.LogCaptureFixture):
    torch.manual_seed(0)
    model = TinyTransformer(ModelConfig())
    before = {k: v.clone() for k, v in model.state_dict().items()}
    cfg = TrainConfig(strategy="naive", epochs=1, inject_nan_at_step=0)
    x, y = _data()
    with (
        caplog.at_level(logging.ERROR, logger="model.training"),
        pytest.raises(LossDivergedError, match="loss diverged"),
    ):
        train_task(
            model,
            make_optimizer(model, cfg),
            get_strategy("naive", model, cfg),
            x,
            y,
            CTX,
            cfg,
            torch.device("cpu"),
        )
    assert [r.levelno for r in caplog.records if "loss diverged" in r.getMessage()] == [logging.ERROR]
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), "no step is taken with a NaN loss"


def test_lr_schedule_warms_up_then_decays():
    cfg = TrainConfig(warmup_frac=0.1, min_lr_frac=0.1)
    lrs = [lr_at(s, 100, cfg, 1.0) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[9:], lrs[10:], strict=False))
    assert lrs[-1] == pytest.approx(0.1, abs=0.01)


def test_device_and_precision_choice():
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu").type == "cpu"
    with autocast(torch.device("cpu"), mixed_precision=True):
        assert torch.ones(2, 2).matmul(torch.ones(2, 2)).dtype == torch.float32, "CPU trains in fp32"


@pytest.mark.parametrize("scope", ["all", "head"])
def test_finetune_scope_head_keeps_the_backbone_as_the_main_phase_left_it(scope: str):
    """Replay's balanced fine-tuning updates only the classifier with finetune_scope="head"."""
    torch.manual_seed(0)
    cfg = TrainConfig(strategy="replay", epochs=2, batch_size=16, finetune_epochs=3, finetune_scope=scope)
    model = TinyTransformer(ModelConfig())
    optimizer = make_optimizer(model, cfg)
    strategy = get_strategy("replay", model, cfg)
    x, y = _data()
    train_task(model, optimizer, strategy, x, y, CTX, cfg, torch.device("cpu"))  # fills the buffer
    second = TaskContext(1, "t1", (2, 3), ((0, 1),), "class_incremental", 10)
    snapshot: dict[str, torch.Tensor] = {}

    def after_main_epochs(epoch: int, loss: float) -> None:
        if epoch == cfg.epochs - 1:  # the main phase is over; fine-tuning comes next
            snapshot.update({k: v.detach().clone() for k, v in model.state_dict().items()})

    train_task(model, optimizer, strategy, x, y + 2, second, cfg, torch.device("cpu"), after_main_epochs)
    changed = {k for k, v in model.state_dict().items() if not torch.equal(v, snapshot[k])}
    assert "head.weight" in changed
    backbone_changed = {k for k in changed if not k.startswith("head.")}
    assert (backbone_changed == set()) is (scope == "head"), backbone_changed
    assert all(p.requires_grad for p in model.parameters()), "fine-tuning must not leave the backbone frozen"
