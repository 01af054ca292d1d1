"""Naive fine-tuning: the lower bound, no protection against forgetting."""

from __future__ import annotations

from model.strategies.base import Strategy


class NaiveStrategy(Strategy):
    """Plain training on each task in turn; every hook is the base no-op."""

    name = "naive"
