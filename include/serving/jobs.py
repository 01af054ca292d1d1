"""Read-only views of training and maintenance jobs: MLflow runs, maintenance reports, the LR schedule."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from include.ops import tracking
from include.ops.maintenance.probes import mlflow_reachable
from include.ops.settings import Settings

TRAINING_METRICS = ("mean_retention", "new_task_acc", "avg_acc", "bwt", "forgetting", "train_seconds")


def _client(paths: Settings) -> Any:
    """A read-only MlflowClient, or None when the store is unreachable (never creates a store)."""
    ok, _ = mlflow_reachable(paths.mlflow_tracking_uri)
    return tracking.mlflow_client(paths, read_only=True) if ok else None


def _training_runs(paths: Settings, limit: int, ascending: bool) -> tuple[list[Any], str]:
    client = _client(paths)
    if client is None:
        return [], "unreachable"
    exp = client.get_experiment_by_name(paths.mlflow_experiment)
    if exp is None:
        return [], "no experiment"
    order = "ASC" if ascending else "DESC"
    runs = client.search_runs(
        [exp.experiment_id], order_by=[f"attributes.start_time {order}"], max_results=limit
    )
    return runs, "ok"


def _run_summary(run: Any) -> dict[str, Any]:
    """One training run as a job of the API (times in unix seconds), from ``tracking.run_summary``."""
    summary = tracking.run_summary(run)
    start, end = summary["start_time_ms"], summary["end_time_ms"]
    return {
        "kind": "training",
        "name": summary["run_name"],
        "run_id": summary["run_id"],
        "status": summary["status"],
        "start_time": start / 1000 if start else None,
        "end_time": end / 1000 if end else None,
        "duration_s": (end - start) / 1000 if end and start else None,
        **{key: summary[key] for key in ("task_id", "dag_id", "dag_run_id", "loss", "mean_retention")},
    }


def _maintenance_runs(paths: Settings, limit: int) -> list[dict[str, Any]]:
    folder = paths.reports_dir / "maintenance"
    out = []
    for path in sorted(folder.glob("maintenance_*.json"), key=lambda p: p.stat().st_mtime, reverse=True)[
        :limit
    ]:
        try:
            report = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            continue
        out.append(
            {
                "kind": "maintenance",
                "name": report.get("kind"),
                "run_id": report.get("run_id"),
                "status": report.get("status"),
                "start_time": report.get("started_at"),
                "end_time": report.get("finished_at"),
                "duration_s": report.get("duration_s"),
                "failed_checks": [c["name"] for c in report.get("checks", []) if c.get("status") == "fail"],
                "report": path.name,  # under <reports_dir>/maintenance; no absolute path to anonymous readers
            }
        )
    return out


def recent_jobs(paths: Settings, limit: int = 20) -> dict[str, Any]:
    """Newest training runs (MLflow) and maintenance runs (their JSON reports), newest first."""
    runs, mlflow_state = _training_runs(paths, limit, ascending=False)
    jobs = [_run_summary(r) for r in runs] + _maintenance_runs(paths, limit)
    jobs.sort(key=lambda j: j.get("start_time") or 0, reverse=True)
    return {"jobs": jobs[:limit], "sources": {"mlflow": mlflow_state, "maintenance_reports": "ok"}}


def training_history(paths: Settings, limit: int = 50) -> dict[str, Any]:
    """Every training run oldest first: loss per epoch, retention per task and the summary metrics."""
    runs, mlflow_state = _training_runs(paths, limit, ascending=True)
    client = _client(paths) if runs else None
    history = []
    for run in runs:
        metrics = run.data.metrics
        losses = client.get_metric_history(run.info.run_id, "loss") if client else []
        history.append(
            {
                **_run_summary(run),
                "loss_per_epoch": [tracking.finite(m.value) for m in sorted(losses, key=lambda m: m.step)],
                "retention": {
                    k.split(".", 1)[1]: v for k, v in metrics.items() if k.startswith("retention.")
                },
                **{k: tracking.finite(metrics.get(k)) for k in TRAINING_METRICS},
                "lr": run.data.params.get("train.lr"),
                "batch_size": run.data.params.get("train.batch_size"),
            }
        )
    return {"runs": history, "source": mlflow_state}


def train_samples_per_task(paths: Settings) -> int | None:
    """Training rows of the first task of the current stream (validated store first), None if no stream.

    Reads the manifests directly, not ``resolve_task_manifest``: only the first task's row count matters, and
    a read-only view must not query (or create) the MLflow store."""
    from model.data import load_manifest

    for manifest in (paths.validated_dir / "manifest.json", paths.source_manifest):
        if manifest.exists():
            spec = load_manifest(manifest).tasks[0]
            with Path(manifest.parent / spec.file).open() as f:
                return sum(1 for line in f if line.rstrip().endswith(",train"))
    return None


def lr_schedule(train_config: dict[str, Any], train_samples: int, max_points: int = 200) -> dict[str, Any]:
    """The per-task LR schedule (warm-up + cosine, then the exemplar fine-tune phase) of a config."""
    from model.config import TrainConfig
    from model.training import lr_at

    cfg = TrainConfig.from_dict(train_config)
    samples = min(train_samples, cfg.max_samples_per_task or train_samples)
    phases = [("train", samples, cfg.epochs, cfg.lr)]
    if cfg.strategy == "replay" and cfg.finetune_epochs > 0:
        phases.append(("finetune", cfg.replay_budget, cfg.finetune_epochs, cfg.finetune_lr))
    out = []
    for name, rows, epochs, peak in phases:
        steps_per_epoch = math.ceil(math.ceil(rows / cfg.batch_size) / cfg.grad_accum_steps)
        total = steps_per_epoch * epochs
        stride = max(1, math.ceil(total / max_points))
        steps = [*range(0, total, stride), total - 1] if total else []
        points = [{"step": s, "lr": lr_at(s, total, cfg, peak)} for s in sorted(set(steps))]
        out.append({"phase": name, "rows": rows, "steps_per_epoch": steps_per_epoch, "total_steps": total,
                    "peak_lr": peak, "points": points})  # fmt: skip
    keys = ("lr", "warmup_frac", "min_lr_frac", "epochs", "batch_size", "grad_accum_steps", "finetune_lr")
    return {"config": {k: getattr(cfg, k) for k in keys}, "phases": out}
