"""Learning without Forgetting: distil the outputs of a frozen copy of the model taken before each task."""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from model.config import TrainConfig
from model.strategies.base import Strategy, TaskContext, module_bytes


def distillation_loss(
    student_logits: torch.Tensor, teacher_logits: torch.Tensor, groups: list[torch.Tensor], temperature: float
) -> torch.Tensor:
    """Mean over class groups of KL(teacher || student) on temperature-softened softmaxes, scaled by T^2."""
    assert student_logits.shape == teacher_logits.shape, (
        f"student {tuple(student_logits.shape)} vs teacher {tuple(teacher_logits.shape)}"
    )
    assert groups, "distillation needs at least one class group"
    losses = []
    for idx in groups:
        log_p_student = F.log_softmax(student_logits[:, idx].float() / temperature, dim=1)  # (B, G)
        log_p_teacher = F.log_softmax(teacher_logits[:, idx].float() / temperature, dim=1)  # (B, G)
        kl = F.kl_div(log_p_student, log_p_teacher, log_target=True, reduction="batchmean")
        losses.append(kl * temperature**2)  # T^2 keeps gradient scale independent of T (Hinton et al.)
    return torch.stack(losses).mean()


class FrozenTeacher:
    """A copy of the model, allocated once at the model's size, refreshed with the weights before each task."""

    def __init__(self, model: nn.Module) -> None:
        self.model = copy.deepcopy(model).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.groups: list[torch.Tensor] = []

    def refresh(self, model: nn.Module, ctx: TaskContext) -> None:
        """Snapshot ``model`` as the teacher for the task in ``ctx`` (its old-class groups)."""
        self.model.load_state_dict(model.state_dict())
        device = next(self.model.parameters()).device
        self.groups = [torch.tensor(g, device=device) for g in ctx.distill_groups()]

    @property
    def active(self) -> bool:
        """True once there are old classes to distil."""
        return bool(self.groups)

    def loss(self, x: torch.Tensor, student_logits: torch.Tensor, temperature: float) -> torch.Tensor:
        """Distillation loss of ``student_logits`` against the teacher's outputs on ``x``."""
        with torch.no_grad():
            teacher_logits = self.model(x)  # (B, num_classes)
        return distillation_loss(student_logits, teacher_logits, self.groups, temperature)

    def nbytes(self) -> int:
        """Bytes of the frozen copy."""
        return module_bytes(self.model)


class LwFStrategy(Strategy):
    """Exemplar-free: keep old-class outputs close to the teacher's on the new task's inputs."""

    name = "lwf"

    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        super().__init__(model, cfg)
        self.teacher = FrozenTeacher(model)

    def before_task(self, model: nn.Module, ctx: TaskContext, x: torch.Tensor, y: torch.Tensor) -> None:
        """Freeze a copy of the model as it is after the previous task."""
        self.teacher.refresh(model, ctx)

    def extra_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor, ctx: TaskContext
    ) -> torch.Tensor | None:
        """``lwf_alpha`` x distillation on the old classes; None on the first task."""
        if not self.teacher.active or self.cfg.lwf_alpha == 0:
            return None
        return self.cfg.lwf_alpha * self.teacher.loss(x, logits, self.cfg.lwf_temperature)

    def memory_bytes(self) -> int:
        """The frozen copy, i.e. one model's worth of parameters and buffers."""
        return self.teacher.nbytes()
