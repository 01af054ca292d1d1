"""Continual-learning strategies as plugins on the one training loop, looked up by name."""

from __future__ import annotations

from torch import nn

from model.config import TrainConfig
from model.strategies.analytic import AnalyticStrategy
from model.strategies.base import Strategy, TaskContext, UnlearningRefused
from model.strategies.ewc import EWCStrategy
from model.strategies.lwf import LwFStrategy
from model.strategies.naive import NaiveStrategy
from model.strategies.replay import ReplayStrategy

_REGISTRY: dict[str, type[Strategy]] = {
    "naive": NaiveStrategy,
    "replay": ReplayStrategy,
    "lwf": LwFStrategy,
    "ewc": EWCStrategy,
    "analytic": AnalyticStrategy,
}
STRATEGIES: tuple[str, ...] = tuple(_REGISTRY)


def get_strategy(name: str, model: nn.Module, train_cfg: TrainConfig) -> Strategy:
    """Instantiate strategy ``name`` for ``model`` (on its device); ValueError naming the known ones if unknown."""
    try:
        cls = _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown strategy {name!r}; known: {', '.join(STRATEGIES)}") from None
    return cls(model, train_cfg)


__all__ = ["STRATEGIES", "Strategy", "TaskContext", "UnlearningRefused", "get_strategy"]
