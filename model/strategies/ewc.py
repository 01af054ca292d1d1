"""Online EWC: a quadratic penalty, weighted by accumulated Fisher information, on moving important weights."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.config import TrainConfig
from model.strategies.base import Strategy, TaskContext

FISHER_SAMPLES = 256  # per-sample gradients are exact but cost one backward each; 256 pins the estimate well


class EWCStrategy(Strategy):
    """Exemplar-free: one running Fisher and one anchor per parameter (Schwarz et al. 2018, online EWC).

    Memory is two copies of the parameters whatever the number of tasks, because the per-task Fishers are
    folded into one decayed sum (``ewc_gamma``) instead of being kept side by side.
    """

    name = "ewc"

    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        super().__init__(model, cfg)
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.fisher = {n: torch.zeros_like(p, requires_grad=False) for n, p in named}
        self.anchor = {n: torch.zeros_like(p, requires_grad=False) for n, p in named}
        self.consolidated = 0  # tasks folded into the Fisher so far

    def extra_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor, ctx: TaskContext
    ) -> torch.Tensor | None:
        """``ewc_lambda / 2 * sum F (theta - theta*)^2``; None before the first consolidation."""
        if self.consolidated == 0 or self.cfg.ewc_lambda == 0:
            return None
        penalty = sum(
            (self.fisher[n] * (p - self.anchor[n]).pow(2)).sum()
            for n, p in model.named_parameters()
            if n in self.fisher
        )
        return 0.5 * self.cfg.ewc_lambda * penalty  # type: ignore[return-value]

    def after_task(self, model: nn.Module, ctx: TaskContext, x: torch.Tensor, y: torch.Tensor) -> None:
        """Fold this task's empirical Fisher into the running one and move the anchor to the current weights."""
        table = ctx.label_mask_table(self.device)
        n = min(len(y), FISHER_SAMPLES)
        gen = torch.Generator().manual_seed(self.cfg.seed + ctx.task_index)
        rows = torch.randperm(len(y), generator=gen)[:n].to(y.device)
        new = {name: torch.zeros_like(f) for name, f in self.fisher.items()}
        was_training = model.training
        model.eval()
        params = dict(model.named_parameters())
        for i in rows.tolist():
            model.zero_grad(set_to_none=True)
            logits = model(x[i : i + 1])  # (1, num_classes)
            logits = logits.masked_fill(~table[y[i : i + 1]], float("-inf"))
            F.cross_entropy(logits, y[i : i + 1]).backward()
            for name in new:
                grad = params[name].grad
                if grad is not None:
                    new[name] += grad.detach().pow(2) / n
        model.zero_grad(set_to_none=True)
        model.train(was_training)
        for name, f in self.fisher.items():
            f.mul_(self.cfg.ewc_gamma).add_(new[name])
            self.anchor[name].copy_(params[name].detach())
        self.consolidated += 1

    def state_dict(self) -> dict:
        """Running Fisher, anchor weights and the count of consolidated tasks."""
        return {
            "fisher": {n: t.cpu() for n, t in self.fisher.items()},
            "anchor": {n: t.cpu() for n, t in self.anchor.items()},
            "consolidated": self.consolidated,
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore Fisher and anchors; KeyError if the parameter names do not match the model."""
        for n in self.fisher:
            self.fisher[n].copy_(state["fisher"][n])
            self.anchor[n].copy_(state["anchor"][n])
        self.consolidated = int(state["consolidated"])

    def memory_bytes(self) -> int:
        """Fisher plus anchor: twice the parameter bytes, for any number of tasks."""
        tensors = [*self.fisher.values(), *self.anchor.values()]
        return sum(t.numel() * t.element_size() for t in tensors)
