"""Throughput and profiling helpers behind the runbook's performance scripts and the monthly review.

``batch_size_sweep`` measures samples/second of the tiny transformer per batch size (training or inference)
and recommends one; ``profile_dir`` is where every profile and sweep report is written
(``settings.reports_dir/profiles``). torch is imported inside the functions.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.ops.settings import Settings, get_settings

DEFAULT_BATCH_SIZES = (16, 32, 64, 128, 256, 512)
MODES = ("train", "inference")


def profile_dir(settings: Settings | None = None) -> Path:
    """``reports_dir/profiles``, created if missing."""
    out = (settings or get_settings()).reports_dir / "profiles"
    out.mkdir(parents=True, exist_ok=True)
    return out


def timestamp() -> str:
    """UTC timestamp used in report file names (sortable, no colons)."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def write_json_report(data: dict[str, Any], name: str, settings: Settings | None = None) -> Path:
    """Write ``data`` as ``profile_dir/<name>_<timestamp>.json`` atomically; return the path."""
    path = profile_dir(settings) / f"{name}_{timestamp()}.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str) + "\n")
    os.replace(tmp, path)
    return path


def recommend_batch_size(results: Sequence[dict[str, Any]], tolerance: float = 0.9) -> tuple[int | None, str]:
    """Smallest batch size reaching ``tolerance`` x the best throughput, and why; ``(None, reason)`` if none ran.

    Beyond that point larger batches buy little speed but cost memory and, on a tiny data set, fewer
    optimizer steps per epoch.
    """
    ok = [r for r in results if r.get("status") == "ok" and r.get("samples_per_second")]
    if not ok:
        return None, "no batch size completed"
    best = max(ok, key=lambda r: r["samples_per_second"])
    threshold = tolerance * best["samples_per_second"]
    chosen = min((r for r in ok if r["samples_per_second"] >= threshold), key=lambda r: r["batch_size"])
    reason = (
        f"batch {chosen['batch_size']} reaches {chosen['samples_per_second']:.0f} samples/s, "
        f">= {tolerance:.0%} of the best ({best['samples_per_second']:.0f} at batch {best['batch_size']})"
    )
    return int(chosen["batch_size"]), reason


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by the nearest-rank method."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def batch_size_sweep(
    batch_sizes: Sequence[int] = DEFAULT_BATCH_SIZES,
    *,
    mode: str = "train",
    steps: int = 20,
    warmup: int = 3,
    device: str = "auto",
    mixed_precision: bool = True,
    compile: bool = False,
    tolerance: float = 0.9,
    model_config: dict[str, Any] | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Measure throughput of ``mode`` ('train' or 'inference') per batch size and recommend one.

    Returns ``{"device", "mode", "param_count", "results": [{batch_size, status, samples_per_second,
    step_seconds_mean, step_seconds_p95, peak_memory_bytes}], "recommended_batch_size", "reason", ...}``.
    A CUDA out-of-memory marks that size ``oom`` and stops the sweep (larger sizes would fail too).
    """
    import torch
    import torch.nn.functional as F

    from model.config import ModelConfig, TrainConfig
    from model.network import TinyTransformer
    from model.training import autocast, make_optimizer, resolve_device

    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    if steps < 1 or warmup < 0:
        raise ValueError(f"steps must be >= 1 and warmup >= 0, got steps={steps} warmup={warmup}")
    sizes = sorted({int(b) for b in batch_sizes})
    if not sizes or sizes[0] < 1:
        raise ValueError(f"batch sizes must be positive integers, got {list(batch_sizes)}")

    dev = resolve_device(device)
    torch.manual_seed(seed)
    cfg = ModelConfig.from_dict(model_config or {})
    train_cfg = TrainConfig(mixed_precision=mixed_precision, compile=compile)
    results: list[dict[str, Any]] = []
    param_count = 0
    for batch_size in sizes:
        model = TinyTransformer(cfg).to(dev)
        param_count = model.num_parameters()
        forward = torch.compile(model) if compile else model
        optimizer = make_optimizer(model, train_cfg) if mode == "train" else None
        model.train(mode == "train")
        x = torch.rand(batch_size, cfg.num_features, device=dev)  # (B, F): pixels in [0, 1] like the digits
        y = torch.randint(0, cfg.num_classes, (batch_size,), device=dev)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        timings: list[float] = []
        row: dict[str, Any] = {"batch_size": batch_size}
        try:
            for i in range(warmup + steps):
                start = time.perf_counter()
                if optimizer is not None:
                    with autocast(dev, mixed_precision):
                        loss = F.cross_entropy(forward(x).float(), y)
                    loss.backward()
                    optimizer.step()
                    optimizer.zero_grad(set_to_none=True)
                else:
                    with torch.inference_mode(), autocast(dev, mixed_precision):
                        forward(x)
                if dev.type == "cuda":
                    torch.cuda.synchronize(dev)
                if i >= warmup:
                    timings.append(time.perf_counter() - start)
        except torch.cuda.OutOfMemoryError:
            row.update(status="oom")
            results.append(row)
            torch.cuda.empty_cache()
            break
        mean = statistics.fmean(timings)
        row.update(
            status="ok",
            samples_per_second=batch_size / mean,
            step_seconds_mean=mean,
            step_seconds_p95=percentile(timings, 0.95),
            peak_memory_bytes=int(torch.cuda.max_memory_allocated(dev)) if dev.type == "cuda" else None,
        )
        results.append(row)
    recommended, reason = recommend_batch_size(results, tolerance)
    return {
        "created": datetime.now(UTC).isoformat(),
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "mode": mode,
        "mixed_precision": bool(mixed_precision and dev.type == "cuda"),
        "compile": compile,
        "steps": steps,
        "warmup": warmup,
        "torch_threads": torch.get_num_threads(),
        "param_count": param_count,
        "results": results,
        "recommended_batch_size": recommended,
        "tolerance": tolerance,
        "reason": reason,
    }


def find_pids(pattern: str) -> list[int]:
    """Pids of processes (not this one) whose command line contains ``pattern`` (the runbook's ``pgrep -f``)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        cmdline = " ".join(proc.info.get("cmdline") or [])
        if pattern in cmdline and proc.info["pid"] != os.getpid():
            found.append(proc.info["pid"])
    return sorted(found)


def _gpu_snapshot() -> list[dict[str, Any]]:
    """Per-GPU utilisation and memory from ``nvidia-smi``; empty without an NVIDIA driver."""
    import shutil
    import subprocess

    if shutil.which("nvidia-smi") is None:
        return []
    query = "index,name,utilization.gpu,memory.used,memory.total"
    try:
        out = subprocess.run(
            ["nvidia-smi", f"--query-gpu={query}", "--format=csv,noheader,nounits"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout
    except (subprocess.SubprocessError, OSError):
        return []
    gpus = []
    for line in out.strip().splitlines():
        index, name, util, used, total = (v.strip() for v in line.split(","))
        gpus.append(
            {
                "index": int(index),
                "name": name,
                "utilization_percent": float(util),
                "memory_used_bytes": int(float(used) * 2**20),
                "memory_total_bytes": int(float(total) * 2**20),
            }
        )
    return gpus


def resource_snapshot(
    pids: Sequence[int] = (), disk_paths: Sequence[Path] = (), interval: float = 0.5
) -> dict:
    """System CPU (per core), memory, swap, I/O wait, disk usage of ``disk_paths``, GPUs, and per-pid usage.

    CPU percentages are measured over ``interval`` seconds. A pid that has exited is reported with an error.
    """
    import psutil

    procs: dict[int, Any] = {}
    for pid in pids:
        try:
            procs[pid] = psutil.Process(pid)
            procs[pid].cpu_percent(None)  # starts the per-process measurement window
        except psutil.Error as exc:
            procs[pid] = exc
    per_core = psutil.cpu_percent(interval=interval, percpu=True)
    times = psutil.cpu_times_percent(interval=None)
    mem, swap = psutil.virtual_memory(), psutil.swap_memory()
    processes = []
    for pid, proc in procs.items():
        if isinstance(proc, Exception):
            processes.append({"pid": pid, "error": f"{type(proc).__name__}: {proc}"})
            continue
        try:
            with proc.oneshot():
                processes.append(
                    {
                        "pid": pid,
                        "name": proc.name(),
                        "cmdline": " ".join(proc.cmdline())[:300],
                        "cpu_percent": proc.cpu_percent(None),
                        "rss_bytes": proc.memory_info().rss,
                        "threads": proc.num_threads(),
                        "open_files": len(proc.open_files()),
                        "status": proc.status(),
                    }
                )
        except psutil.Error as exc:
            processes.append({"pid": pid, "error": f"{type(exc).__name__}: {exc}"})
    disks = []
    for path in disk_paths:
        path = Path(path)
        probe = path if path.exists() else next((p for p in path.parents if p.exists()), Path("/"))
        usage = psutil.disk_usage(str(probe))
        disks.append(
            {
                "path": str(path),
                "total_bytes": usage.total,
                "used_bytes": usage.used,
                "percent": usage.percent,
            }
        )
    return {
        "created": datetime.now(UTC).isoformat(),
        "cpu": {
            "count": psutil.cpu_count(),
            "percent_per_core": per_core,
            "iowait_percent": getattr(times, "iowait", None),
            "load_avg": list(os.getloadavg()),
        },
        "memory": {"total_bytes": mem.total, "available_bytes": mem.available, "percent": mem.percent},
        "swap": {"total_bytes": swap.total, "used_bytes": swap.used, "percent": swap.percent},
        "disks": disks,
        "gpus": _gpu_snapshot(),
        "processes": processes,
    }


def py_spy(pid: int, mode: str = "dump", duration: int = 5, out: Path | None = None) -> tuple[int, str]:
    """Run ``py-spy dump`` (stacks now) or ``py-spy record`` (``duration`` s flame graph to ``out``) on ``pid``.

    Returns ``(exit code, output)``. Needs ptrace rights on the target (root, or CAP_SYS_PTRACE in a container).
    """
    import shutil
    import subprocess
    import sys

    exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if mode == "dump":
        cmd = [exe, "dump", "--pid", str(pid)]
    elif mode == "record":
        if out is None:
            raise ValueError("py-spy record needs an output path")
        cmd = [exe, "record", "--pid", str(pid), "--duration", str(duration), "--nonblocking", "-o", str(out)]
    else:
        raise ValueError(f"mode must be 'dump' or 'record', got {mode!r}")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=duration + 60)
    except FileNotFoundError:
        return 127, f"py-spy not found at {exe}"
    return proc.returncode, (proc.stdout + proc.stderr).strip()
