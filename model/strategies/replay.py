"""Experience replay with a fixed, class-balanced exemplar budget, distillation and balanced fine-tuning."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.config import TrainConfig
from model.strategies.base import Strategy, TaskContext
from model.strategies.lwf import FrozenTeacher


def class_quotas(classes: list[int], budget: int) -> dict[int, int]:
    """Split ``budget`` over ``classes`` as evenly as possible (the first classes get the remainder)."""
    if not classes:
        return {}
    base, extra = divmod(budget, len(classes))
    return {c: base + (1 if i < extra else 0) for i, c in enumerate(sorted(classes))}


def herding_order(features: torch.Tensor, k: int) -> torch.Tensor:
    """Indices of ``k`` rows chosen greedily so their running mean tracks the mean feature (Welling 2009).

    The order is by priority: any prefix is itself a good herding set, so shrinking a class keeps a prefix.
    """
    k = min(k, len(features))
    feats = F.normalize(features.float(), dim=1)  # (N, C)
    target = feats.mean(dim=0)  # (C,)
    chosen: list[int] = []
    running = torch.zeros_like(target)
    available = torch.ones(len(feats), dtype=torch.bool, device=feats.device)
    for i in range(1, k + 1):
        candidate_means = (running + feats) / i  # (N, C)
        dist = (candidate_means - target).norm(dim=1).masked_fill(~available, float("inf"))  # (N,)
        best = int(dist.argmin())
        chosen.append(best)
        available[best] = False
        running += feats[best]
    return torch.tensor(chosen, dtype=torch.long)


def kmeans_medoids(points: torch.Tensor, k: int, gen: torch.Generator, iters: int = 25) -> torch.Tensor:
    """Indices of ``k`` distinct rows, each the nearest to one centroid of a k-means++ clustering of ``points``.

    Real samples that cover the modes of a class: on Split-Digits they train a far better classifier than the
    same number of herded (mean-like) samples, which all sit near the class centre.
    """
    n = len(points)
    if k >= n:
        return torch.arange(n)
    pts = points.detach().float().cpu()  # (N, F)
    first = int(torch.randint(n, (1,), generator=gen))
    picked = [first]
    d2 = (pts - pts[first]).pow(2).sum(dim=1)  # (N,) squared distance to the nearest picked centre
    for _ in range(1, k):
        nxt = int(torch.multinomial(d2 / d2.sum(), 1, generator=gen)) if d2.sum() > 0 else int(d2.argmax())
        picked.append(nxt)
        d2 = torch.minimum(d2, (pts - pts[nxt]).pow(2).sum(dim=1))
    centers = pts[picked]  # (k, F)
    for _ in range(iters):
        assign = torch.cdist(pts, centers).argmin(dim=1)  # (N,)
        sums = torch.zeros_like(centers).index_add_(0, assign, pts)  # (k, F)
        counts = torch.bincount(assign, minlength=k).unsqueeze(1)  # (k, 1)
        updated = torch.where(counts > 0, sums / counts.clamp_min(1), centers)
        if torch.equal(updated, centers):
            break
        centers = updated
    dist = torch.cdist(centers, pts)  # (k, N)
    taken = torch.zeros(n, dtype=torch.bool)
    chosen = []
    for j in range(k):
        i = int(dist[j].masked_fill(taken, float("inf")).argmin())
        taken[i] = True
        chosen.append(i)
    return torch.tensor(chosen, dtype=torch.long)


class ReplayStrategy(Strategy):
    """Appends replayed exemplars to every batch; optional distillation and balanced fine-tuning at task end.

    The buffer is allocated once at ``replay_budget`` rows, so its memory never grows with the tasks; when
    new classes arrive every class is cut to an equal share (``replay_selection``: k-means medoids or herding).
    """

    name = "replay"

    def __init__(self, model: nn.Module, cfg: TrainConfig) -> None:
        super().__init__(model, cfg)
        num_features = model.cfg.num_features  # type: ignore[union-attr]
        self.x = torch.zeros(cfg.replay_budget, num_features, device=self.device)
        self.y = torch.full((cfg.replay_budget,), -1, dtype=torch.long, device=self.device)
        self.size = 0
        # own generator so the replay draws are reproducible and resumable independently of the loop's
        self.gen = torch.Generator().manual_seed(cfg.seed + 7919)
        self.teacher = FrozenTeacher(model) if cfg.replay_distill_alpha > 0 else None

    def before_task(self, model: nn.Module, ctx: TaskContext, x: torch.Tensor, y: torch.Tensor) -> None:
        """Snapshot the teacher used to distil old-class logits."""
        if self.teacher is not None:
            self.teacher.refresh(model, ctx)

    def adapt_batch(
        self, x: torch.Tensor, y: torch.Tensor, ctx: TaskContext
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Concatenate ``replay_batch_size`` exemplars drawn uniformly (the buffer is class-balanced)."""
        if self.size == 0 or self.cfg.replay_batch_size == 0:
            return x, y
        idx = torch.randint(self.size, (self.cfg.replay_batch_size,), generator=self.gen).to(self.device)
        return torch.cat([x, self.x[idx]]), torch.cat([y, self.y[idx]])

    def extra_loss(
        self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor, ctx: TaskContext
    ) -> torch.Tensor | None:
        """Distillation of old-class logits on the whole (new + replayed) batch, weighted by replay_distill_alpha."""
        if self.teacher is None or not self.teacher.active:
            return None
        return self.cfg.replay_distill_alpha * self.teacher.loss(x, logits, self.cfg.lwf_temperature)

    @torch.no_grad()
    def after_task(self, model: nn.Module, ctx: TaskContext, x: torch.Tensor, y: torch.Tensor) -> None:
        """Re-balance the buffer over every class seen: shrink old classes to their share, select the new ones."""
        old_y = self.y[: self.size]
        quotas = class_quotas(sorted(set(old_y.tolist()) | set(y.tolist())), self.cfg.replay_budget)
        parts_x, parts_y = [], []
        for c, quota in quotas.items():
            held = (old_y == c).nonzero().flatten()
            stored = len(held) > 0
            pool = self.x[held] if stored else x[y == c]  # (N_c, F)
            keep = self._select(model, pool, quota, stored)
            parts_x.append(pool[keep.to(pool.device)])
            parts_y.append(torch.full((len(keep),), c, dtype=torch.long, device=self.device))
        new_x, new_y = torch.cat(parts_x), torch.cat(parts_y)
        assert len(new_y) <= self.cfg.replay_budget, (
            f"buffer {len(new_y)} over budget {self.cfg.replay_budget}"
        )
        self.size = len(new_y)
        self.x[: self.size] = new_x
        self.y[: self.size] = new_y
        self.y[self.size :] = -1

    def _select(self, model: nn.Module, pool: torch.Tensor, quota: int, stored: bool) -> torch.Tensor:
        """Indices of the ``quota`` rows of ``pool`` (one class) to keep."""
        if self.cfg.replay_selection == "kmeans":
            return kmeans_medoids(pool, quota, self.gen)
        if stored:
            return torch.arange(min(quota, len(pool)))  # herded rows are stored in priority order
        was_training = model.training
        model.eval()
        feats = model.features(pool)  # type: ignore[operator]
        model.train(was_training)
        return herding_order(feats, quota)

    def finetune_set(self, ctx: TaskContext) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The class-balanced buffer, to remove the bias towards the newest classes (EEIL-style)."""
        if self.cfg.finetune_epochs == 0 or self.size == 0 or not ctx.past_classes:
            return None
        return self.x[: self.size], self.y[: self.size]

    def state_dict(self) -> dict:
        """Buffer rows, fill level and the replay generator's state."""
        return {
            "x": self.x[: self.size].cpu(),
            "y": self.y[: self.size].cpu(),
            "gen_state": self.gen.get_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore the buffer; refuses one larger than this strategy's budget."""
        n = len(state["y"])
        if n > self.cfg.replay_budget:
            raise ValueError(
                f"stored replay buffer has {n} exemplars, over the budget of {self.cfg.replay_budget}"
            )
        self.size = n
        self.x[:n] = state["x"].to(self.device)
        self.y[:n] = state["y"].to(self.device)
        self.y[n:] = -1
        self.gen.set_state(state["gen_state"])

    def memory_bytes(self) -> int:
        """The pre-allocated buffer plus the distillation teacher, if enabled."""
        teacher = self.teacher.nbytes() if self.teacher is not None else 0
        return self.x.numel() * self.x.element_size() + self.y.numel() * self.y.element_size() + teacher

    def stored_exemplars(self) -> int:
        """Exemplars currently held (at most ``replay_budget``)."""
        return self.size
