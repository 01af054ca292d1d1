"""Monthly performance review (runbook "Monthly Tasks"): batch-size throughput and the optimization checklist."""

from __future__ import annotations

import statistics
from typing import Any

import psutil

from include.ops import serving_routes as routes
from include.ops.maintenance import integrations
from include.ops.maintenance.capacity import gpu_headroom
from include.ops.maintenance.probes import http_request
from include.ops.maintenance.report import NOT_AVAILABLE, PASS, WARN, CheckResult
from include.ops.settings import Settings


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def measure_app_latency(app_url: str, requests: int = 40) -> dict[str, Any]:
    """Round trips to ``/health`` (network latency) and ``/predict`` with one image (inference latency)."""
    base = app_url.rstrip("/")
    health = [http_request(base + routes.LIVENESS.path, timeout=5) for _ in range(10)]
    image = {"instances": [[(i * 7) % 17 for i in range(64)]]}
    preds = [http_request(base + routes.PREDICT.path, "POST", image, timeout=10) for _ in range(requests)]
    ok_health = [r.latency_ms for r in health if r.ok]
    ok_preds = [r.latency_ms for r in preds if r.ok]
    return {
        "health_ms_median": statistics.median(ok_health) if ok_health else None,
        "predict_ms_p95": _p95(ok_preds) if ok_preds else None,
        "predict_ok": len(ok_preds),
        "predict_errors": sorted({str(r.error or r.status) for r in preds if not r.ok}),
    }


def _item(name: str, target: str, measured: Any, ok: bool | None, note: str = "") -> dict[str, Any]:
    status = "n/a" if ok is None else "met" if ok else "not met"
    return {"item": name, "target": target, "measured": measured, "status": status, "note": note}


def performance_review(
    paths: Settings,
    app_url: str | None,
    min_train_samples_per_s: float = 1000.0,
    prometheus_url: str | None = None,
    quick: bool = False,
) -> CheckResult:
    """Throughput per batch size with the recommendation (``include.ops.perf``), and the runbook's
    "Optimization Checklist" with each item's measured value. Unmet items warn; n/a items say why.
    """
    sweep_fn = integrations.find("include.ops.perf", "batch_size_sweep")
    details: dict[str, Any] = {}
    sweeps: dict[str, Any] = {}
    if sweep_fn is not None:
        steps, warmup = (3, 1) if quick else (20, 3)
        for mode, sizes in (
            ("inference", [1, 8, 32, 128]),
            ("train", [16, 32, 64] if quick else [16, 32, 64, 128, 256]),
        ):
            sweeps[mode] = sweep_fn(sizes, mode=mode, steps=steps, warmup=warmup)
        details["throughput"] = {
            mode: {"per_batch_size": {r["batch_size"]: r.get("samples_per_second") for r in rep["results"]},
                   "recommended_batch_size": rep.get("recommended_batch_size"), "reason": rep.get("reason"),
                   "device": rep.get("device_name")}
            for mode, rep in sweeps.items()
        }  # fmt: skip
    else:
        details["throughput"] = "not available: " + integrations.missing("include.ops.perf")
    checklist = []
    gpus = gpu_headroom()
    if gpus:
        used = max(100 - g["headroom_pct"] for g in gpus)
        checklist.append(_item("GPU memory utilization", "> 80%", f"{used:.1f}%", used > 80))
    else:
        checklist.append(_item("GPU memory utilization", "> 80%", None, None, "no CUDA device on this host"))
    per_core = psutil.cpu_percent(interval=1.0, percpu=True)
    spread = max(per_core) - min(per_core)
    checklist.append(_item("CPU utilization balanced across cores", "spread < 25 points",
                           {"per_core_pct": per_core, "spread": round(spread, 1)}, spread < 25))  # fmt: skip
    iowait = getattr(psutil.cpu_times_percent(interval=1.0), "iowait", None)
    checklist.append(_item("I/O wait time", "< 10%", iowait, None if iowait is None else iowait < 10))
    app = measure_app_latency(app_url) if app_url else None
    details["app"] = app
    net = app["health_ms_median"] if app else None
    checklist.append(_item("Network latency", "< 100 ms", net, None if net is None else net < 100,
                           "" if app_url else "no app URL"))  # fmt: skip
    leak = _memory_trend(prometheus_url)
    checklist.append(_item("Memory usage stable (no leaks)", "RSS growth < 10%/week", leak.get("growth_pct"),
                           leak.get("ok"), leak.get("note", "")))  # fmt: skip
    p95 = app["predict_ms_p95"] if app else None
    checklist.append(_item("Inference latency P95", "< 500 ms", p95, None if p95 is None else p95 < 500,
                           "" if p95 is not None else "no /predict answer from the app"))  # fmt: skip
    train_best = None
    if "train" in sweeps:
        rates = [
            r.get("samples_per_second") for r in sweeps["train"]["results"] if r.get("samples_per_second")
        ]
        train_best = max(rates) if rates else None
    checklist.append(_item("Training throughput", f"> {min_train_samples_per_s:g} samples/s", train_best,
                           None if train_best is None else train_best > min_train_samples_per_s))  # fmt: skip
    details["checklist"] = checklist
    unmet = [c["item"] for c in checklist if c["status"] == "not met"]
    na = [c["item"] for c in checklist if c["status"] == "n/a"]
    summary = f"{len(checklist) - len(unmet) - len(na)} met, {len(unmet)} not met, {len(na)} n/a"
    if sweep_fn is None:
        return CheckResult(
            "performance_review", NOT_AVAILABLE, summary + "; batch-size sweep not available", details
        )
    rec = details["throughput"]["inference"]["recommended_batch_size"]
    summary += f"; recommended inference batch size {rec}"
    if unmet:
        return CheckResult("performance_review", WARN, summary + f" (not met: {', '.join(unmet)})", details)
    return CheckResult("performance_review", PASS, summary, details)


def _memory_trend(prometheus_url: str | None) -> dict[str, Any]:
    """Growth of the app's RSS over the last week from Prometheus (``process_resident_memory_bytes``)."""
    if not prometheus_url:
        return {"ok": None, "note": "PROMETHEUS_URL is unset: no RSS history"}
    from urllib.parse import urlencode

    selector = 'process_resident_memory_bytes{job="continual-transformer-app"}'
    queries = {"now": f"max({selector})", "week_ago": f"max({selector} offset 7d)"}
    values: dict[str, float | None] = {}
    for key, query in queries.items():
        res = http_request(
            f"{prometheus_url.rstrip('/')}/api/v1/query?{urlencode({'query': query})}", timeout=15
        )
        series = res.body.get("data", {}).get("result", []) if res.ok and isinstance(res.body, dict) else []
        values[key] = float(series[0]["value"][1]) if series else None
    now, before = values["now"], values["week_ago"]
    if now is None or before is None or before <= 0:
        return {"ok": None, "note": "not enough RSS history in Prometheus (needs 7 days)", "values": values}
    pct = 100 * (now - before) / before
    return {"ok": pct < 10, "growth_pct": round(pct, 1), "values": values}
