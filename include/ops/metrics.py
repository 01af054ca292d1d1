"""Prometheus side of batch jobs: metric names (the runbook's) and pushes to a Pushgateway.

Batch jobs (training, backups, maintenance) cannot be scraped, so they push to the Pushgateway named by env
``PUSHGATEWAY_URL`` with grouping key ``job`` (Prometheus batch-job conventions: last success timestamp,
duration, outcome). Pushes use POST (``pushadd``), which replaces only the metric families pushed, so a
failed run never erases the last success timestamp. Nothing here raises on network errors.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time

from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway

from include.ops.maintenance.probes import safe_url

log = logging.getLogger(__name__)

TRAINING_LOSS = "continual_transformer_training_loss"
MEMORY_USAGE = "continual_transformer_memory_usage_bytes"
INFERENCE_DURATION = "continual_transformer_inference_duration_seconds"
RETENTION = "continual_transformer_knowledge_retention_score"
JOB_LAST_SUCCESS = "continual_transformer_job_last_success_timestamp_seconds"
JOB_LAST_FAILURE = "continual_transformer_job_last_failure_timestamp_seconds"
JOB_DURATION = "continual_transformer_job_duration_seconds"
JOB_SUCCESS = "continual_transformer_job_success"
JOB_PERIOD = "continual_transformer_job_period_seconds"
BACKUP_LAST_SUCCESS = "continual_transformer_backup_last_success_timestamp_seconds"
CHECKPOINT_LAST = "continual_transformer_checkpoint_last_timestamp_seconds"
# /predict answered 503 + Retry-After because the batcher queue was full
REQUESTS_SHED = "continual_transformer_requests_shed_total"

TRAINING_JOB = "continual_training"
PUSH_TIMEOUT_S = 5.0
# Expected interval between successes of the periodic jobs; the JobNotSucceeding alert reads it.
JOB_PERIODS_S: dict[str, float] = {
    "maintenance_daily": 86400.0,
    "maintenance_weekly": 7 * 86400.0,
    "maintenance_monthly": 31 * 86400.0,
}

_warned_unconfigured = False


def pushgateway_url() -> str | None:
    """The Pushgateway address from env ``PUSHGATEWAY_URL``, or None when pushing is off."""
    return os.environ.get("PUSHGATEWAY_URL", "").strip() or None


def memory_usage_samples() -> list[tuple[str, str, float]]:
    """``(device, type, bytes)``: cpu = process RSS and system total; per CUDA device reserved and total.

    CUDA is only queried when torch is already imported by the caller, so light processes never load it.
    """
    import psutil

    samples = [
        ("cpu", "allocated", float(psutil.Process().memory_info().rss)),
        ("cpu", "total", float(psutil.virtual_memory().total)),
    ]
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        for i in range(torch.cuda.device_count()):
            samples.append((f"gpu_{i}", "allocated", float(torch.cuda.memory_reserved(i))))
            samples.append((f"gpu_{i}", "total", float(torch.cuda.get_device_properties(i).total_memory)))
    return samples


def _push(job: str, registry: CollectorRegistry) -> bool:
    global _warned_unconfigured
    url = pushgateway_url()
    if url is None:
        if not _warned_unconfigured:
            log.info("PUSHGATEWAY_URL is not set: job metrics are not pushed")
            _warned_unconfigured = True
        return False
    try:
        pushadd_to_gateway(url, job=job, registry=registry, timeout=PUSH_TIMEOUT_S)
    except Exception as exc:  # metrics must never break the job that reports them
        log.warning("push of %s metrics to %s failed: %s", job, safe_url(url), exc)
        return False
    return True


def push_job_metrics(job: str, duration_s: float, success: bool, period_s: float | None = None) -> bool:
    """Push a batch job's outcome (grouping key ``job``); True if pushed, False if off or unreachable.

    Success sets the last-success timestamp, failure the last-failure timestamp; duration and outcome are
    always replaced. ``period_s`` (default from ``JOB_PERIODS_S``) is how often the job should succeed.
    """
    if not job:
        raise ValueError("job must be a non-empty name")
    if not math.isfinite(duration_s) or duration_s < 0:
        raise ValueError(f"duration_s must be a finite number >= 0, got {duration_s!r}")
    reg = CollectorRegistry()
    now = time.time()
    Gauge(JOB_DURATION, "Duration of the last run of the batch job", registry=reg).set(duration_s)
    Gauge(JOB_SUCCESS, "1 if the last run of the batch job succeeded, else 0", registry=reg).set(int(success))
    if success:
        Gauge(JOB_LAST_SUCCESS, "Unix time of the last successful run", registry=reg).set(now)
    else:
        Gauge(JOB_LAST_FAILURE, "Unix time of the last failed run", registry=reg).set(now)
    period = period_s if period_s is not None else JOB_PERIODS_S.get(job)
    if period is not None:
        Gauge(JOB_PERIOD, "Expected interval between successful runs", registry=reg).set(period)
    return _push(job, reg)


def push_training_metrics(task_id: str, loss: float, retention: dict[str, float]) -> bool:
    """Push the last loss, retention per task and this process's memory (job ``continual_training``).

    A NaN loss is pushed as NaN (the TrainingLossNotFinite alert catches it). True if pushed.
    """
    if not task_id:
        raise ValueError("task_id must be a non-empty task id")
    reg = CollectorRegistry()
    Gauge(TRAINING_LOSS, "Final training loss of the last task learned", ["task"], registry=reg).labels(
        task=task_id
    ).set(float(loss))
    score = Gauge(RETENTION, "Knowledge retention R[T,j]/R[j,j] per earlier task", ["task"], registry=reg)
    for task, value in retention.items():
        if value is not None and math.isfinite(float(value)):
            score.labels(task=str(task)).set(float(value))
    memory = Gauge(MEMORY_USAGE, "Memory in use and available, by device", ["device", "type"], registry=reg)
    for device, kind, value in memory_usage_samples():
        memory.labels(device=device, type=kind).set(value)
    return _push(TRAINING_JOB, reg)


def push_backup_metrics(last_backup_ts: float | None, last_checkpoint_ts: float | None) -> bool:
    """Push the times of the newest verified backup and newest checkpoint (job ``backup_verification``)."""
    reg = CollectorRegistry()
    if last_backup_ts is not None:
        Gauge(BACKUP_LAST_SUCCESS, "Unix time of the newest verified backup", registry=reg).set(
            last_backup_ts
        )
    if last_checkpoint_ts is not None:
        Gauge(CHECKPOINT_LAST, "Unix time of the newest checkpoint", registry=reg).set(last_checkpoint_ts)
    if last_backup_ts is None and last_checkpoint_ts is None:
        return False
    return _push("backup_verification", reg)
