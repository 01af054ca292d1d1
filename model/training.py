"""The one training loop: strategies plug into its hooks; device, precision and divergence are handled here."""

from __future__ import annotations

import contextlib
import logging
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from model.config import TrainConfig
from model.faults import fault_point
from model.strategies.base import Strategy, TaskContext

logger = logging.getLogger("model.training")

EpochCallback = Callable[[int, float], None]


class LossDivergedError(RuntimeError):
    """A NaN/inf loss stopped the task; nothing of that task was saved."""


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` -> CUDA when available, else CPU; any other value is passed to ``torch.device``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


_AMP_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def autocast(
    device: torch.device, mixed_precision: bool, dtype: str = "bf16"
) -> contextlib.AbstractContextManager:
    """``dtype`` ("bf16"/"fp16") autocast on CUDA when enabled; a no-op on CPU, where fp32 is faster here."""
    if mixed_precision and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=_AMP_DTYPES[dtype])
    return contextlib.nullcontext()


def make_grad_scaler(device: torch.device, cfg: TrainConfig) -> torch.amp.GradScaler:
    """A GradScaler enabled only for fp16 autocast on CUDA; disabled it passes scale/step/update through."""
    enabled = cfg.mixed_precision and cfg.amp_dtype == "fp16" and device.type == "cuda"
    return torch.amp.GradScaler(device.type, enabled=enabled)


def configure_backends(device: torch.device, cfg: TrainConfig) -> None:
    """Apply process-wide backend switches: ``cudnn.benchmark`` on CUDA (input shapes never change here)."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = cfg.cudnn_benchmark


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW with weight decay on matrices only (nanoGPT): norms, biases and embeddings are not decayed."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr, betas=(0.9, 0.99))


def lr_at(step: int, total: int, cfg: TrainConfig, peak: float) -> float:
    """Linear warm-up over ``warmup_frac`` of the steps, then cosine decay to ``peak * min_lr_frac``."""
    warmup = max(1, int(cfg.warmup_frac * total))
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    floor = peak * cfg.min_lr_frac
    return floor + 0.5 * (peak - floor) * (1.0 + math.cos(math.pi * progress))


def masked_logits(logits: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
    """Set logits outside ``allowed`` ((num_classes,) or (B, num_classes) bool) to -inf (rows must allow one)."""
    return logits.masked_fill(~allowed, float("-inf"))


@dataclass
class _Phase:
    """One pass of epochs over a data set with its own peak learning rate."""

    name: str
    x: torch.Tensor
    y: torch.Tensor
    epochs: int
    peak_lr: float
    use_hooks: bool  # replay/distillation hooks apply in the main phase only


def _batches(n: int, batch_size: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches covering ``n`` rows once."""
    perm = torch.randperm(n, generator=gen)
    yield from perm.split(batch_size)


class _ShuffledBatches(torch.utils.data.Sampler):
    """Yields one epoch of index batches per iteration, drawn in the main process from ``gen`` exactly as
    the in-memory path draws them, so both paths see the same batches in the same order."""

    def __init__(self, n: int, batch_size: int, gen: torch.Generator) -> None:
        self.n, self.batch_size, self.gen = n, batch_size, gen

    def __iter__(self) -> Iterator[torch.Tensor]:
        return _batches(self.n, self.batch_size, self.gen)

    def __len__(self) -> int:
        return math.ceil(self.n / self.batch_size)


class _IndexedTensors(torch.utils.data.Dataset):
    """``dataset[index_tensor]`` -> the (x, y) rows of a whole batch (one fetch per batch, not per row)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor) -> None:
        self.x, self.y = x, y

    def __getitem__(self, idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.x[idx], self.y[idx]

    def __len__(self) -> int:
        return len(self.y)


def _epoch_source(
    phase: _Phase, cfg: TrainConfig, gen: torch.Generator, device: torch.device
) -> Callable[[], Iterator[tuple[torch.Tensor, torch.Tensor]]]:
    """What one epoch iterates: (x, y) batches on ``device``, sliced in memory or from a DataLoader.

    ``num_workers > 0`` builds one DataLoader per phase with persistent workers (started once, reused by
    every epoch) and, on CUDA, pinned memory with non-blocking copies; the batches are identical either way.
    """
    n = len(phase.y)
    if cfg.num_workers == 0:
        x, y = phase.x.to(device), phase.y.to(device)

        def sliced() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
            for idx in _batches(n, cfg.batch_size, gen):
                idx = idx.to(device)
                yield x[idx], y[idx]

        return sliced
    pin = cfg.pin_memory and device.type == "cuda"
    loader = torch.utils.data.DataLoader(
        _IndexedTensors(phase.x.cpu(), phase.y.cpu()),
        sampler=_ShuffledBatches(n, cfg.batch_size, gen),
        batch_size=None,  # the sampler yields whole batches of indices
        num_workers=cfg.num_workers,
        pin_memory=pin,
        persistent_workers=True,
    )

    def loaded() -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for xb, yb in loader:
            yield xb.to(device, non_blocking=pin), yb.to(device, non_blocking=pin)

    return loaded


def train_task(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    strategy: Strategy,
    x: torch.Tensor,
    y: torch.Tensor,
    ctx: TaskContext,
    cfg: TrainConfig,
    device: torch.device,
    on_epoch_end: EpochCallback | None = None,
) -> list[float]:
    """Train ``model`` on one task through the strategy hooks; return the mean loss of every epoch.

    Raises LossDivergedError (logged at ERROR with "loss diverged") on a NaN/inf loss, before any
    optimizer step is taken with it.
    """
    assert x.shape[0] == y.shape[0] and x.shape[0] > 0, (
        f"bad task data: x {tuple(x.shape)}, y {tuple(y.shape)}"
    )
    configure_backends(device, cfg)
    main = _Phase(
        "train", x, y, cfg.epochs, cfg.lr, use_hooks=True
    )  # host tensors: the DataLoader reads them
    x, y = x.to(device), y.to(device)
    forward = torch.compile(model) if cfg.compile else model
    table = ctx.label_mask_table(device)
    scaler = make_grad_scaler(device, cfg)
    model.train()
    strategy.before_task(model, ctx, x, y)
    epoch_losses = _run_phase(
        forward, model, optimizer, scaler, strategy, main, table, ctx, cfg, device, on_epoch_end
    )
    strategy.after_task(model, ctx, x, y)
    balanced = strategy.finetune_set(ctx)
    if balanced is not None and cfg.finetune_epochs > 0:
        phase = _Phase("finetune", *balanced, cfg.finetune_epochs, cfg.finetune_lr, use_hooks=False)
        with _trainable_only(model, "head." if cfg.finetune_scope == "head" else ""):
            _run_phase(forward, model, optimizer, scaler, strategy, phase, table, ctx, cfg, device, None)
    model.eval()
    return epoch_losses


@contextlib.contextmanager
def _trainable_only(model: nn.Module, prefix: str) -> Iterator[None]:
    """Freeze every parameter whose name does not start with ``prefix`` for the block ("" = train all).

    Frozen parameters get no gradient, so the optimizer skips them (no update, no weight decay)."""
    frozen = [p for name, p in model.named_parameters() if p.requires_grad and not name.startswith(prefix)]
    for p in frozen:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p in frozen:
            p.requires_grad_(True)


def _run_phase(
    forward: Callable[[torch.Tensor], torch.Tensor],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scaler: torch.amp.GradScaler,
    strategy: Strategy,
    phase: _Phase,
    table: torch.Tensor,
    ctx: TaskContext,
    cfg: TrainConfig,
    device: torch.device,
    on_epoch_end: EpochCallback | None,
) -> list[float]:
    """Run the epochs of one phase with gradient accumulation, warm-up/cosine LR and divergence checks."""
    labels = phase.y.unique()
    assert table[labels].any(dim=1).all(), (
        f"labels {labels.tolist()} include a class outside the task context"
    )
    # a fixed per-task generator makes the data order depend only on (seed, task), so a resumed run matches
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + ctx.task_index * 101 + (phase.name != "train"))
    n = len(phase.y)
    micro_per_epoch = math.ceil(n / cfg.batch_size)
    steps_per_epoch = math.ceil(micro_per_epoch / cfg.grad_accum_steps)
    total_steps = steps_per_epoch * phase.epochs
    step = 0
    epoch_losses: list[float] = []
    epoch_batches = _epoch_source(phase, cfg, gen, device)
    optimizer.zero_grad(set_to_none=True)
    for epoch in range(phase.epochs):
        loss_sum = torch.zeros((), device=device)
        for micro, (xb, yb) in enumerate(epoch_batches()):
            if phase.use_hooks:
                xb, yb = strategy.adapt_batch(xb, yb, ctx)
            with autocast(device, cfg.mixed_precision, cfg.amp_dtype):
                logits = forward(xb)  # (B, num_classes)
                loss = F.cross_entropy(masked_logits(logits, table[yb]).float(), yb)
                extra = strategy.extra_loss(model, xb, yb, logits, ctx) if phase.use_hooks else None
                if extra is not None:
                    loss = loss + extra
            if cfg.inject_nan_at_step is not None and phase.use_hooks and step == cfg.inject_nan_at_step:
                loss = loss * float("nan")
            if not torch.isfinite(loss):
                msg = f"loss diverged: {loss.item()} at task {ctx.task_id!r} epoch {epoch} step {step} ({phase.name})"
                logger.error(msg)
                optimizer.zero_grad(set_to_none=True)
                raise LossDivergedError(msg)
            scaler.scale(loss / cfg.grad_accum_steps).backward()
            loss_sum += loss.detach()
            last_micro = micro == micro_per_epoch - 1
            if (micro + 1) % cfg.grad_accum_steps == 0 or last_micro:
                lr = lr_at(step, total_steps, cfg, phase.peak_lr)
                for group in optimizer.param_groups:
                    group["lr"] = lr
                if cfg.grad_clip > 0:
                    scaler.unscale_(optimizer)  # clip true gradients, not scaled ones
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                scaler.step(optimizer)  # skipped by an enabled scaler when fp16 gradients overflowed
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                fault_point("mid_epoch")
                if step % cfg.log_every == 0:
                    logger.info(
                        "task %s %s epoch %d step %d/%d loss %.4f lr %.2e",
                        ctx.task_id, phase.name, epoch, step, total_steps, loss.item(), lr,
                    )  # fmt: skip
        epoch_losses.append(loss_sum.item() / micro_per_epoch)
        if on_epoch_end is not None:
            on_epoch_end(epoch, epoch_losses[-1])
    return epoch_losses
