"""The hook interface every continual-learning strategy implements, and the task context the hooks see."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from model.config import TrainConfig


@dataclass(frozen=True)
class TaskContext:
    """What a hook knows about the task being learned and the tasks before it (in learning order)."""

    task_index: int
    task_id: str
    classes: tuple[int, ...]
    past_classes: tuple[tuple[int, ...], ...]  # classes of each earlier task, in learning order
    scenario: str
    num_classes: int

    @property
    def seen_classes(self) -> list[int]:
        """Every class learned so far, this task's included."""
        return sorted({c for group in (*self.past_classes, self.classes) for c in group})

    @property
    def old_classes(self) -> list[int]:
        """Classes of the earlier tasks only."""
        return sorted({c for group in self.past_classes for c in group})

    def class_mask(
        self, classes: list[int] | tuple[int, ...], device: torch.device | str = "cpu"
    ) -> torch.Tensor:
        """Boolean (num_classes,) mask that is True on ``classes``."""
        mask = torch.zeros(self.num_classes, dtype=torch.bool, device=device)
        mask[list(classes)] = True
        return mask

    def label_mask_table(self, device: torch.device | str = "cpu") -> torch.Tensor:
        """(num_classes, num_classes) bool: row ``c`` = the logits a training sample of label ``c`` competes over.

        Class-incremental: every class seen so far. Task-incremental: the classes of the sample's own task,
        so a replayed sample is trained in its own task's head exactly as it is tested.
        """
        table = torch.zeros(self.num_classes, self.num_classes, dtype=torch.bool, device=device)
        if self.scenario == "class_incremental":
            seen = self.class_mask(self.seen_classes, device)
            table[self.seen_classes] = seen
        else:
            for group in (*self.past_classes, self.classes):
                table[list(group)] = self.class_mask(group, device)
        return table

    def distill_groups(self) -> list[list[int]]:
        """Old-class groups a teacher's outputs are distilled over (one softmax per group)."""
        if not self.past_classes:
            return []
        if self.scenario == "class_incremental":
            return [self.old_classes]
        return [list(group) for group in self.past_classes]


class UnlearningRefused(ValueError):
    """A task cannot be unlearned exactly (the strategy cannot, or the task or its data do not match)."""


class Strategy:
    """A continual-learning method as plugin hooks on the one training loop (avalanche-style).

    The loop calls ``before_task``, then per batch ``adapt_batch`` and ``extra_loss``, then ``after_task``,
    then trains ``finetune_set()`` if it returns data. Extra memory is a fixed budget (``memory_bytes``).
    """

    name = "base"
    closed_form = (
        False  # True: the learner calls ``fit_task`` instead of the SGD loop (the analytic strategy)
    )

    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self.device = next(model.parameters()).device

    def before_task(self, model: nn.Module, ctx: TaskContext, x: torch.Tensor, y: torch.Tensor) -> None:
        """Called once before the first batch of a task."""

    def adapt_batch(
        self, x: torch.Tensor, y: torch.Tensor, ctx: TaskContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return the batch actually trained on (replay appends exemplars here)."""
        return x, y

    def extra_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor, ctx: TaskContext
    ) -> torch.Tensor | None:
        """Return a loss term added to the cross-entropy (distillation, EWC penalty), or None."""
        return None

    def after_task(self, model: nn.Module, ctx: TaskContext, x: torch.Tensor, y: torch.Tensor) -> None:
        """Called once after the last batch of a task (update memories, consolidate)."""

    def finetune_set(self, ctx: TaskContext) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Class-balanced data to fine-tune on after the task, or None to skip that phase."""
        return None

    def fit_task(self, model: nn.Module, ctx: TaskContext, x: torch.Tensor, y: torch.Tensor) -> list[float]:
        """Learn a task without SGD (``closed_form`` strategies only); returns the losses to report."""
        raise NotImplementedError(f"strategy {self.name!r} learns by SGD (model.training.train_task)")

    def unlearn(self, model: nn.Module, ctx: TaskContext, x: torch.Tensor, y: torch.Tensor) -> None:
        """Remove one learned task's contribution exactly; refused by every strategy that cannot."""
        raise UnlearningRefused(
            f"strategy {self.name!r} cannot unlearn a task exactly: what a task taught it is spread over weights "
            "trained by SGD (and any replay buffer); only the 'analytic' strategy can subtract a task"
        )

    def state_dict(self) -> dict:
        """Everything needed to resume, as tensors/primitives only (checkpoints load with weights_only)."""
        return {}

    def load_state_dict(self, state: dict) -> None:
        """Restore what ``state_dict`` returned."""

    def memory_bytes(self) -> int:
        """Bytes of extra memory the strategy holds; a fixed budget, independent of the number of tasks."""
        return 0

    def stored_exemplars(self) -> int:
        """Number of training samples kept in memory."""
        return 0


def module_bytes(model: nn.Module) -> int:
    """Bytes of a module's parameters and buffers."""
    return sum(t.numel() * t.element_size() for t in (*model.parameters(), *model.buffers()))
