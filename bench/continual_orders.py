"""Split-Digits under 5 class orders with 95% intervals, the replay-20 frontier and the analytic checks.

The continual bench (``bench/bench_continual.py``) runs, class-incremental, ``ORDER_STRATEGIES`` on each of
``N_ORDERS`` class orders (order 0 is Split-Digits itself; the others pair a seeded permutation of the ten
digits) over its seeds, and reports one ``split_digits_5_orders`` row per strategy: the mean over every
(order, seed) run, a two-sided 95% Student-t interval, and the per-order means. ``VARIANTS`` are strategies
with other settings (replay with 20 exemplars in total). An analytic run also checks that its head after the
last task equals the joint ridge regression on the same features (weights, predictions).
"""

from __future__ import annotations

import random
import statistics
from typing import Any

ORDER_PREFIX = "split_digits_order"
ORDERS_ROW = "split_digits_5_orders"
N_ORDERS = 5
ORDER_STRATEGIES = ("joint", "analytic", "replay")
# name -> (strategy, TrainConfig overrides): the memory/accuracy frontier below the default replay budget
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {"replay20": ("replay", {"replay_budget": 20})}
# the analytic targets (checked and printed, not asserted)
ANALYTIC_MIN_ACC, ANALYTIC_JOINT_MARGIN, ANALYTIC_MIN_RETENTION, ANALYTIC_TASK_IL = 0.98, 0.005, 0.95, 0.99
# two-sided 95% Student-t quantiles by degrees of freedom (1..30); beyond that the normal 1.96
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145,
         2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048,
         2.045, 2.042)  # fmt: skip


def order_streams(n_orders: int = N_ORDERS) -> dict[str, tuple[tuple[tuple[int, ...], ...], int]]:
    """Streams of the class orders 1..n-1 (order 0 is ``split_digits``): stream name -> (groups, split seed 0)."""
    out = {}
    for k in range(1, n_orders):
        digits = random.Random(k).sample(range(10), 10)
        out[f"{ORDER_PREFIX}{k}"] = (tuple(tuple(sorted(digits[i : i + 2])) for i in range(0, 10, 2)), 0)
    return out


def order_of(stream: str) -> int | None:
    """The class order a stream stands for (0 for ``split_digits``), None for any other stream."""
    if stream == "split_digits":
        return 0
    return int(stream.removeprefix(ORDER_PREFIX)) if stream.startswith(ORDER_PREFIX) else None


def resolve(strategy: str, overrides: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(strategy, overrides) a run of ``strategy`` (a strategy or a ``VARIANTS`` name) trains with."""
    base, extra = VARIANTS.get(strategy, (strategy, {}))
    return base, {**overrides, **extra}


def interval95(values: list[float | None]) -> list[float] | None:
    """[low, high] of the two-sided 95% Student-t interval of the mean, or None with fewer than 2 values."""
    vals = [v for v in values if v is not None]
    if len(vals) < 2:
        return None
    t = _T975[len(vals) - 2] if len(vals) - 1 <= len(_T975) else 1.96
    half = t * statistics.stdev(vals) / len(vals) ** 0.5
    mean = statistics.fmean(vals)
    return [mean - half, mean + half]


def joint_ridge_check(learner: Any) -> dict[str, Any]:
    """Distance of an analytic learner's head from the joint ridge head on the same features and splits."""
    import torch

    from model.strategies.analytic import analytic_features, joint_ridge_head

    cfg = learner.train_cfg
    tasks = []
    for i, task_id in enumerate(learner.learned_tasks):  # the rows each task was learned from
        data = learner.task_data(task_id).subsample_train(cfg.max_samples_per_task, cfg.seed + i)
        tasks.append((task_id, data.x_train, data.y_train))
    joint = joint_ridge_head(learner.model, tasks, learner.train_cfg.seed)  # (D+1, K)
    head = torch.cat([learner.model.head.weight.T, learner.model.head.bias[None]]).detach()
    x = torch.cat([learner.task_data(t).x_test for t in learner.learned_tasks])
    with torch.no_grad():
        active = learner.model.active_classes
        joint_pred = (
            (analytic_features(learner.model, x) @ joint).masked_fill(~active, float("-inf")).argmax(1)
        )
        same = bool(torch.equal(learner.model(x.to(learner.device)).argmax(1), joint_pred))
    return {
        "joint_ridge_max_weight_diff": float((head - joint).abs().max()),
        "joint_ridge_same_predictions": same,
    }


def run_fields(runs: list[dict]) -> dict[str, Any]:
    """What a bench row adds from its runs: 95% intervals, per-run figures and the analytic checks."""
    out: dict[str, Any] = {
        "final_avg_acc_ci95": interval95([r["avg_acc"] for r in runs]),
        "min_retention_ci95": interval95([r.get("min_retention") for r in runs]),
        "runs": [
            {k: r.get(k) for k in ("seed", "order", "avg_acc", "min_retention", "stored_exemplars")}
            for r in runs
        ],
    }
    if any("joint_ridge_max_weight_diff" in r for r in runs):
        out["joint_ridge_max_weight_diff"] = max(r["joint_ridge_max_weight_diff"] for r in runs)
        out["joint_ridge_same_predictions"] = all(r["joint_ridge_same_predictions"] for r in runs)
    return out


def order_rows(raw: dict[tuple[str, str, str], list[dict]], base_row: Any) -> list[dict]:
    """One ``ORDERS_ROW`` row per strategy run on every order: means over (order, seed), intervals, per order.

    ``base_row(stream, scenario, strategy, runs)`` builds the bench's usual row from runs."""
    rows = []
    for strategy in ORDER_STRATEGIES:
        runs = []
        for (stream, scenario, st), found in raw.items():
            if st == strategy and scenario == "class_incremental" and order_of(stream) is not None:
                runs += [{**r, "order": order_of(stream)} for r in found]
        if len({r["order"] for r in runs}) < 2:
            continue
        row = base_row(ORDERS_ROW, "class_incremental", strategy, runs)
        row["per_order"] = {
            str(k): {
                "final_avg_acc": statistics.fmean(r["avg_acc"] for r in runs if r["order"] == k),
                "min_retention": _mean_or_none([r.get("min_retention") for r in runs if r["order"] == k]),
            }
            for k in sorted({r["order"] for r in runs})
        }
        rows.append(row)
    return rows


def _mean_or_none(values: list[float | None]) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def print_analytic_targets(rows: list[dict]) -> None:
    """Print the issue's analytic targets against the rows of the same run."""

    def find(stream: str, scenario: str, strategy: str) -> dict | None:
        return next(
            (r for r in rows if (r["stream"], r["scenario"], r["strategy"]) == (stream, scenario, strategy)),
            None,
        )

    for stream in (ORDERS_ROW, "split_digits"):
        analytic, joint = (
            find(stream, "class_incremental", "analytic"),
            find(stream, "class_incremental", "joint"),
        )
        if analytic is None:
            continue
        acc = analytic["final_avg_acc"]
        checks = [
            (f"final_avg_acc >= {ANALYTIC_MIN_ACC}", acc >= ANALYTIC_MIN_ACC, f"{acc:.4f}"),
            (f"min_retention >= {ANALYTIC_MIN_RETENTION}", (analytic["min_retention"] or 0) >= ANALYTIC_MIN_RETENTION,
             f"{analytic['min_retention']:.4f}"),
            ("stored_exemplars == 0", analytic["stored_exemplars"] == 0, str(analytic["stored_exemplars"])),
        ]  # fmt: skip
        if joint is not None:
            floor = joint["final_avg_acc"] - ANALYTIC_JOINT_MARGIN
            checks.append(
                (
                    f"final_avg_acc >= joint - {ANALYTIC_JOINT_MARGIN}",
                    acc >= floor,
                    f"{acc:.4f} vs {floor:.4f}",
                )
            )
        if "joint_ridge_max_weight_diff" in analytic:
            diff, same = analytic["joint_ridge_max_weight_diff"], analytic["joint_ridge_same_predictions"]
            checks.append(
                ("head == joint ridge (weights 1e-9, predictions)", diff < 1e-9 and same, f"{diff:.1e}")
            )
        for name, ok, value in checks:
            print(f"target {stream} analytic {name}: {value} {'MET' if ok else 'MISSED'}")
    til = find("split_digits", "task_incremental", "analytic")
    if til is not None:
        ok = til["final_avg_acc"] >= ANALYTIC_TASK_IL
        print(f"target split_digits task_incremental analytic final_avg_acc >= {ANALYTIC_TASK_IL}: "
              f"{til['final_avg_acc']:.4f} {'MET' if ok else 'MISSED'}")  # fmt: skip
