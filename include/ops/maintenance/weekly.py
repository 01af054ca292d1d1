"""Weekly checks (runbook "Weekly Tasks"): dependency vulnerabilities, cleanup, performance trends, DR drill."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from include.ops.maintenance import integrations
from include.ops.maintenance.probes import http_request, mlflow_reachable, safe_url
from include.ops.maintenance.report import FAIL, NOT_AVAILABLE, PASS, SKIPPED, WARN, CheckResult
from include.ops.settings import Settings, get_settings

VULN_SERVICES = {"pypi": "https://pypi.org/pypi/pip/json", "osv": "https://api.osv.dev/v1/query"}
LOSS_THRESHOLD = 2.0  # runbook "Key Metrics to Monitor"
LATENCY_P95_THRESHOLD_S = 1.0


def audit_dependencies(
    service: str = "pypi", timeout_s: float = 900.0, probe_url: str | None = None
) -> CheckResult:
    """``pip-audit`` of the running environment when its vulnerability service answers; skipped otherwise.

    Known vulnerabilities fail the check and are listed with their fix versions.
    """
    if service not in VULN_SERVICES:
        raise ValueError(f"service must be one of {sorted(VULN_SERVICES)}, got {service!r}")
    url = probe_url or get_settings().vuln_probe_url or VULN_SERVICES[service]
    method, payload = (
        ("POST", {"package": {"name": "pip", "ecosystem": "PyPI"}}) if service == "osv" else ("GET", None)
    )
    probe = http_request(url, method, payload, timeout=10)
    if probe.status is None:
        return CheckResult(
            "dependency_audit",
            SKIPPED,
            f"skipped: service unreachable ({safe_url(url)}: {probe.error})",
            {"service": service, "probe": safe_url(url)},
        )
    cmd = [sys.executable, "-m", "pip_audit", "--format", "json", "--progress-spinner", "off",
           "--vulnerability-service", service]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s, check=False)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError:
        return CheckResult("dependency_audit", FAIL, f"pip-audit failed (exit {proc.returncode})",
                           {"stderr": proc.stderr[-4000:]})  # fmt: skip
    deps = data.get("dependencies", [])
    vulnerable = [
        {"name": d["name"], "version": d.get("version"),
         "vulns": [{"id": v["id"], "fix_versions": v.get("fix_versions", [])} for v in d["vulns"]]}
        for d in deps if d.get("vulns")
    ]  # fmt: skip
    details = {"service": service, "audited": len(deps), "vulnerable": vulnerable,
               "skipped": [d["name"] for d in deps if d.get("skip_reason")]}  # fmt: skip
    if vulnerable:
        ids = sum(len(v["vulns"]) for v in vulnerable)
        names = ", ".join(f"{v['name']} {v['version']}" for v in vulnerable)
        return CheckResult("dependency_audit", FAIL, f"{ids} known vulnerabilities in {names}", details)
    return CheckResult(
        "dependency_audit", PASS, f"{len(deps)} packages audited, no known vulnerabilities", details
    )


def cleanup(paths: Settings, keep_checkpoints: int = 10, log_days: int = 30) -> CheckResult:
    """Keep the newest ``keep_checkpoints`` checkpoints, delete logs older than ``log_days``, free the GPU cache.

    Checkpoint and log cleanup are the backup module's functions; a missing one is ``not_available``.
    """
    if keep_checkpoints < 1:
        raise ValueError(f"keep_checkpoints must be >= 1, got {keep_checkpoints}")
    if log_days < 1:
        raise ValueError(f"log_days must be >= 1, got {log_days}")
    details: dict[str, Any] = {"keep_checkpoints": keep_checkpoints, "log_days": log_days}
    missing: list[str] = []
    for key, outcome in (
        ("checkpoints", integrations.cleanup_checkpoints(paths, keep_checkpoints)),
        ("logs", integrations.cleanup_logs(paths, log_days)),
    ):
        if outcome is None:
            missing.append(f"{key} cleanup: " + integrations.missing("include.ops.backup.cleanup"))
        details[key] = outcome
    details["gpu_cache"] = clear_gpu_cache()
    if missing:
        return CheckResult("cleanup", NOT_AVAILABLE, "; ".join(missing), details)
    removed = {k: len(details[k]["removed"]) for k in ("checkpoints", "logs")}
    freed = sum(details[k]["bytes_freed"] for k in ("checkpoints", "logs"))
    summary = (
        f"removed {removed['checkpoints']} checkpoint(s) (kept {len(details['checkpoints']['kept'])}), "
        f"{removed['logs']} log file(s); {freed / 2**20:.1f} MiB freed"
    )
    return CheckResult("cleanup", PASS, summary, details)


def clear_gpu_cache() -> dict[str, Any]:
    """``torch.cuda.empty_cache()`` when CUDA is present; reports reserved bytes released by this process."""
    import torch

    if not torch.cuda.is_available():
        return {"cuda": False}
    before = sum(torch.cuda.memory_reserved(i) for i in range(torch.cuda.device_count()))
    torch.cuda.empty_cache()
    after = sum(torch.cuda.memory_reserved(i) for i in range(torch.cuda.device_count()))
    return {"cuda": True, "freed_bytes": before - after}


def _mlflow_trends(paths: Settings, since: float) -> dict[str, Any]:
    ok, reason = mlflow_reachable(paths.mlflow_tracking_uri)
    if not ok:
        return {"error": reason, "runs": []}
    from include.ops.tracking import mlflow_client, run_summary

    client = mlflow_client(paths, read_only=True)
    exp = client.get_experiment_by_name(paths.mlflow_experiment)
    if exp is None:
        return {"error": f"no experiment {paths.mlflow_experiment!r}", "runs": []}
    runs = client.search_runs(
        [exp.experiment_id],
        filter_string=f"attributes.start_time >= {int(since * 1000)}",
        order_by=["attributes.start_time ASC"],
        max_results=1000,
    )
    rows = []
    for run in runs:
        summary = run_summary(run)
        rows.append(
            {
                "time": summary["start_time_ms"] / 1000,
                **{k: summary[k] for k in ("task_id", "status", "loss", "mean_retention", "new_task_acc")},
            }
        )
    return {"runs": rows}


def prometheus_range(
    url: str, query: str, start: float, end: float, step_s: float
) -> list[tuple[float, float]]:
    """Points of the first series of a ``query_range``; RuntimeError naming the query on an API error."""
    from urllib.parse import urlencode

    qs = urlencode({"query": query, "start": start, "end": end, "step": step_s})
    result = http_request(f"{url.rstrip('/')}/api/v1/query_range?{qs}", timeout=30)
    if not result.ok or not isinstance(result.body, dict) or result.body.get("status") != "success":
        raise RuntimeError(
            f"Prometheus query {query!r} failed: {result.error or result.status} {result.body}"
        )
    series = result.body["data"]["result"]
    if not series:
        return []
    return [(float(t), float(v)) for t, v in series[0]["values"] if math.isfinite(float(v))]


LATENCY_P95_QUERY = "histogram_quantile(0.95, sum by (le) (rate(continual_transformer_inference_duration_seconds_bucket[1h])))"


def performance_trends(
    paths: Settings, out_png: Path, days: float = 7.0, prometheus_url: str | None = None
) -> CheckResult:
    """Loss and retention of the last ``days`` from MLflow, latency P95 from Prometheus, and a PNG plot.

    Warns when the newest loss > 2.0, the newest retention is below ``paths.retention_threshold``, the
    latency P95 ever exceeded 1 s, a source had no data, or Prometheus is not configured (``PROMETHEUS_URL``).
    """
    now = time.time()
    since = now - days * 86400
    mlflow_data = _mlflow_trends(paths, since)
    runs = mlflow_data["runs"]
    latency: list[tuple[float, float]] = []
    notes: list[str] = []
    if prometheus_url:
        try:
            latency = prometheus_range(
                prometheus_url, LATENCY_P95_QUERY, since, now, max(60.0, days * 86400 / 250)
            )
        except RuntimeError as exc:
            notes.append(str(exc))
        if not latency:
            notes.append("no latency samples in Prometheus for the window")
    else:
        notes.append("latency trend skipped: PROMETHEUS_URL is unset")
    if "error" in mlflow_data:
        notes.append(f"MLflow: {mlflow_data['error']}")
    elif not runs:
        notes.append(f"no training runs in the last {days:g} days")
    losses = [(r["time"], r["loss"]) for r in runs if r["loss"] is not None]
    retention = [(r["time"], r["mean_retention"]) for r in runs if r["mean_retention"] is not None]
    findings = []
    retention_threshold = paths.retention_threshold
    if losses and losses[-1][1] > LOSS_THRESHOLD:
        findings.append(f"latest loss {losses[-1][1]:.3f} > {LOSS_THRESHOLD}")
    if retention and retention[-1][1] < retention_threshold:
        findings.append(f"latest mean retention {retention[-1][1]:.3f} < {retention_threshold}")
    if latency and max(v for _, v in latency) > LATENCY_P95_THRESHOLD_S:
        findings.append(
            f"latency P95 peaked at {max(v for _, v in latency):.3f} s > {LATENCY_P95_THRESHOLD_S} s"
        )
    plot_trends(out_png, losses, retention, latency, days, retention_threshold)
    details = {
        "window_days": days,
        "training_runs": runs,
        "latency_p95": latency,
        "summary": {
            "runs": len(runs),
            "loss_last": losses[-1][1] if losses else None,
            "mean_retention_last": retention[-1][1] if retention else None,
            "mean_retention_min": min((v for _, v in retention), default=None),
            "latency_p95_max_s": max((v for _, v in latency), default=None),
        },
        "notes": notes,
        "plot": str(out_png),
    }
    summary = f"{len(runs)} training run(s), {len(latency)} latency point(s) over {days:g} days"
    if findings or notes:
        return CheckResult("performance_trends", WARN, "; ".join([summary, *findings, *notes]), details)
    return CheckResult("performance_trends", PASS, summary + "; all within the runbook thresholds", details)


def plot_trends(
    out_png: Path,
    losses: list[tuple[float, float]],
    retention: list[tuple[float, float]],
    latency: list[tuple[float, float]],
    days: float,
    retention_threshold: float,
) -> Path:
    """Three stacked panels (loss, mean retention, latency P95) with the runbook thresholds as lines."""
    import matplotlib

    matplotlib.use("Agg")
    from datetime import UTC, datetime

    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    panels = (
        (axes[0], losses, "training loss", LOSS_THRESHOLD),
        (axes[1], retention, "mean retention", retention_threshold),
        (axes[2], latency, "inference P95 (s)", LATENCY_P95_THRESHOLD_S),
    )
    for ax, points, label, threshold in panels:
        if points:
            ax.plot(
                [datetime.fromtimestamp(t, UTC) for t, _ in points], [v for _, v in points], marker="o", ms=3
            )
        else:
            ax.text(0.5, 0.5, "no data", transform=ax.transAxes, ha="center", va="center", color="gray")
        ax.axhline(threshold, color="red", linestyle="--", linewidth=1, label=f"threshold {threshold}")
        ax.set_ylabel(label)
        ax.legend(loc="upper right", fontsize=8)
        ax.grid(alpha=0.3)
    axes[0].set_title(f"Performance trends, last {days:g} days")
    fig.autofmt_xdate()
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    tmp = out_png.with_name(f".{out_png.name}.tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(out_png)
    return out_png


def dr_drill(paths: Settings) -> CheckResult:
    """The backup module's disaster-recovery drill: restore the newest backup into scratch and validate it."""
    report = integrations.dr_drill(paths)
    if report is None:
        return CheckResult("dr_drill", NOT_AVAILABLE, "DR drill not available: " + integrations.missing())
    if report.get("ok"):
        rto, rpo = report.get("restore_seconds"), report.get("backup_age_seconds")
        return CheckResult("dr_drill", PASS, f"backup {report.get('backup_id')} restored and validated "
                           f"(RTO {rto} s, RPO {rpo} s)", report)  # fmt: skip
    return CheckResult(
        "dr_drill", FAIL, "DR drill failed: " + "; ".join(report.get("problems") or []), report
    )
