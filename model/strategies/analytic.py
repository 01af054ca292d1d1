"""Analytic continual learning (ACIL / RanPAC): a closed-form ridge head over frozen random features, no SGD.

The transformer stays at its seeded initialisation; its pooled representation goes through a fixed random
ReLU expansion (``model.network.RandomReLUExpansion``), and the head is the ridge regression of one-hot labels
on those features, solved in float64 from accumulated statistics only: the Gram matrix ``G = sum Phi^T Phi``
and the cross-covariance ``C = sum Phi^T Y`` (a constant feature carries the bias). Their size depends on the
feature width and the class capacity, never on the number of tasks, and no training row is stored. Because
sums commute, the head after the last task equals the joint ridge regression on all tasks' rows, and a task's
contribution can be subtracted exactly (``unlearn``).

The ridge term is chosen from ``RIDGE_GRID`` on a validation split carved from each task's training rows
(``VALIDATION_FRACTION``, drawn by seed and task id, so the same rows whatever the task's position): the
validation rows' own ``G_val``, ``C_val`` give the validation squared error of any head fitted on the other
rows in closed form, so the choice too is a function of the sums and survives unlearning exactly. The final
head is then solved on every training row (fit + validation) with the chosen term.
"""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F
from torch import nn

from model.config import TrainConfig
from model.strategies.base import Strategy, TaskContext, UnlearningRefused

RIDGE_GRID: tuple[float, ...] = (1e-2, 1e-1, 1.0, 10.0, 100.0)
VALIDATION_FRACTION = 0.2
_FEATURE_BATCH = 512
_STATS = ("gram", "gram_val", "cross", "cross_val")


def validation_rows(n: int, seed: int, task_id: str) -> torch.Tensor:
    """Boolean (n,) mask of the training rows held out to choose the ridge term (by seed and task id)."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + zlib.crc32(task_id.encode()))
    mask = torch.zeros(n, dtype=torch.bool)
    mask[torch.randperm(n, generator=gen)[: int(n * VALIDATION_FRACTION)]] = True
    return mask


@torch.no_grad()
def analytic_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """(N, expansion_dim + 1) float64 features the head reads, the last column the constant bias feature."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    parts = [
        model.expansion(model.features(chunk.to(device))).double()  # type: ignore[operator,union-attr]
        for chunk in x.split(_FEATURE_BATCH)
    ]
    model.train(was_training)
    phi = torch.cat(parts)  # (N, D)
    return torch.cat([phi, torch.ones(len(phi), 1, dtype=phi.dtype, device=phi.device)], dim=1)  # (N, D+1)


def ridge_statistics(
    phi: torch.Tensor, y: torch.Tensor, val: torch.Tensor, num_classes: int
) -> dict[str, torch.Tensor]:
    """``G``, ``G_val``, ``C``, ``C_val`` (float64) and per-class row counts of one batch of rows."""
    targets = F.one_hot(y.to(phi.device), num_classes).double()  # (N, K)
    val = val.to(phi.device)
    return {
        "gram": phi.T @ phi,  # (D+1, D+1)
        "gram_val": phi[val].T @ phi[val],
        "cross": phi.T @ targets,  # (D+1, K)
        "cross_val": phi[val].T @ targets[val],
        "counts": torch.bincount(y.cpu(), minlength=num_classes),
    }


def ridge_solve(gram: torch.Tensor, cross: torch.Tensor, ridge: float) -> torch.Tensor:
    """``(G + ridge I)^-1 C`` in float64 by Cholesky (LU if the factorisation fails), on G's device."""
    a = gram + ridge * torch.eye(len(gram), dtype=gram.dtype, device=gram.device)
    chol, info = torch.linalg.cholesky_ex(a)
    if int(info) == 0:
        return torch.cholesky_solve(cross, chol)
    return torch.linalg.solve(a, cross)


def select_and_solve(stats: dict[str, torch.Tensor]) -> tuple[torch.Tensor, float]:
    """The head ``(D+1, K)`` on all rows and the ridge term of ``RIDGE_GRID`` with the least validation error."""
    gram, gram_val, cross, cross_val = (stats[k] for k in _STATS)
    if not bool(gram_val.any()):
        ridge = 1.0  # no validation row (tiny task): the grid's middle
    else:
        fit_gram, fit_cross = gram - gram_val, cross - cross_val
        errors = []
        for ridge in RIDGE_GRID:
            w = ridge_solve(fit_gram, fit_cross, ridge)  # (D+1, K)
            # sum over validation rows of ||phi w - y||^2, up to the constant sum ||y||^2
            errors.append(float((w * (gram_val @ w)).sum() - 2 * (w * cross_val).sum()))
        ridge = RIDGE_GRID[min(range(len(errors)), key=errors.__getitem__)]
    return ridge_solve(gram, cross, ridge), ridge


def joint_ridge_head(
    model: nn.Module, tasks: list[tuple[str, torch.Tensor, torch.Tensor]], seed: int
) -> torch.Tensor:
    """The joint reference: the ridge head on every task's rows at once (same features and splits)."""
    num_classes = model.cfg.num_classes  # type: ignore[union-attr]
    x = torch.cat([t[1] for t in tasks])
    y = torch.cat([t[2] for t in tasks])
    val = torch.cat([validation_rows(len(t[2]), seed, t[0]) for t in tasks])
    return select_and_solve(ridge_statistics(analytic_features(model, x), y, val, num_classes))[0]


class AnalyticStrategy(Strategy):
    """Closed-form ridge head over frozen random features; exact continual learning and exact unlearning."""

    name = "analytic"
    closed_form = True

    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        super().__init__(model, cfg)
        if getattr(model, "expansion", None) is None:
            raise ValueError(
                "the analytic strategy needs a model with a random feature expansion (ModelConfig.expansion_dim "
                "> 0); the learner sets it for a new stream"
            )
        width = model.cfg.expansion_dim + 1  # type: ignore[union-attr]
        k = model.cfg.num_classes  # type: ignore[union-attr]
        f64 = {"dtype": torch.float64, "device": self.device}
        self.stats: dict[str, torch.Tensor] = {
            "gram": torch.zeros(width, width, **f64),
            "gram_val": torch.zeros(width, width, **f64),
            "cross": torch.zeros(width, k, **f64),
            "cross_val": torch.zeros(width, k, **f64),
            "counts": torch.zeros(k, dtype=torch.long),
        }
        self.ridge = float("nan")
        self.head64: torch.Tensor | None = None  # the solved (D+1, K) head, float64

    def _task_stats(self, model: nn.Module, ctx: TaskContext, x: torch.Tensor, y: torch.Tensor) -> dict:
        val = validation_rows(len(y), self.cfg.seed, ctx.task_id)
        return ridge_statistics(analytic_features(model, x), y, val, self.stats["counts"].numel())

    def fit_task(self, model: nn.Module, ctx: TaskContext, x: torch.Tensor, y: torch.Tensor) -> list[float]:
        """Add the task's statistics and solve the head again; returns [mean squared error on the task's rows]."""
        task = self._task_stats(model, ctx, x, y)
        for key, value in task.items():
            self.stats[key] += value
        self._solve(model)
        return [self._mse(task)]

    def unlearn(self, model: nn.Module, ctx: TaskContext, x: torch.Tensor, y: torch.Tensor) -> None:
        """Subtract exactly what learning ``ctx``'s task on (x, y) added, then solve again."""
        task = self._task_stats(model, ctx, x, y)
        if bool((task["counts"] > self.stats["counts"]).any()):
            raise UnlearningRefused(
                f"task {ctx.task_id!r}: its rows per class {task['counts'].tolist()} exceed what was learned "
                f"{self.stats['counts'].tolist()}: not the data that was learned"
            )
        for key, value in task.items():
            self.stats[key] -= value
        gone = self.stats["counts"] == 0
        # exactly zero, not rounding residue, for the classes no learned row has any more
        self.stats["cross"][:, gone.to(self.device)] = 0.0
        self.stats["cross_val"][:, gone.to(self.device)] = 0.0
        self._solve(model)

    def _mse(self, task: dict) -> float:
        """Mean squared error of the current head on the rows ``task`` summarises."""
        w, n = self.head64, int(task["counts"].sum())
        assert w is not None and n > 0, "the head is solved on at least one row"
        sq = (w * (task["gram"] @ w)).sum() - 2 * (w * task["cross"]).sum() + n
        return float(sq) / n

    @torch.no_grad()
    def _solve(self, model: nn.Module) -> None:
        """Choose the ridge term, solve the head and write it (and the learned-class mask) into the model."""
        self.head64, self.ridge = select_and_solve(self.stats)
        head: nn.Linear = model.head  # type: ignore[assignment]
        head.weight.copy_(self.head64[:-1].T)  # (K, D)
        head.bias.copy_(self.head64[-1])  # (K,)
        model.active_classes.copy_(self.stats["counts"] > 0)  # type: ignore[operator,union-attr]

    def state_dict(self) -> dict:
        """The accumulated statistics (float64 tensors), the class counts and the chosen ridge term."""
        return {**{k: v.cpu() for k, v in self.stats.items()}, "ridge": self.ridge}

    def load_state_dict(self, state: dict) -> None:
        """Restore the statistics; the head itself is in the model's state."""
        for key in self.stats:
            if state[key].shape != self.stats[key].shape:
                raise ValueError(
                    f"analytic state {key} has shape {tuple(state[key].shape)}, expected "
                    f"{tuple(self.stats[key].shape)}"
                )
            self.stats[key] = state[key].to(self.stats[key].device)
        self.ridge = float(state["ridge"])
        self.head64 = None

    def memory_bytes(self) -> int:
        """Bytes of G, G_val, C, C_val and the counts: fixed by the feature width and the class capacity."""
        return sum(t.numel() * t.element_size() for t in self.stats.values())
