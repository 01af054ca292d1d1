"""Monthly capacity planning (runbook "Monthly Tasks"): growth of the data folders, days until full, GPU headroom."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import psutil

from include.ops.maintenance.report import FAIL, PASS, WARN, CheckResult
from include.ops.settings import PROJECT_ROOT, Settings

DAY = 86400.0


def growth(folder: Path, window_days: float = 30.0, now: float | None = None) -> dict[str, Any]:
    """Bytes under ``folder`` now and added per day over the last ``window_days`` (by file modification time)."""
    now = now or time.time()
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()] if folder.exists() else []
    sizes = [(p.stat().st_mtime, p.stat().st_size) for p in files]
    total = sum(s for _, s in sizes)
    recent = sum(s for t, s in sizes if t >= now - window_days * DAY)
    oldest = min((t for t, _ in sizes), default=now)
    span_days = max(1.0, min(window_days, (now - oldest) / DAY))  # a young folder grows over its own age
    return {"folder": str(folder), "files": len(files), "bytes": total, "bytes_per_day": recent / span_days}


def gpu_headroom() -> list[dict[str, Any]]:
    """Free and total memory of each CUDA device (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        out.append({"device": f"gpu_{i}", "free_bytes": free, "total_bytes": total,
                    "headroom_pct": round(100 * free / total, 1)})  # fmt: skip
    return out


def capacity_planning(
    paths: Settings, window_days: float = 30.0, warn_days: float = 90.0, fail_days: float = 14.0
) -> CheckResult:
    """Growth of checkpoints, backups and logs, days until the disk holding them is full, GPU headroom.

    Fails under ``fail_days`` of disk left at the current growth, warns under ``warn_days``.
    """
    folders = {"checkpoints": paths.state_dir, "backups": paths.backup_dir, "logs": paths.log_dir,
               "mlflow": paths.var_dir / "mlflow"}  # fmt: skip
    grown = {name: growth(folder, window_days) for name, folder in folders.items()}
    probe = paths.var_dir if paths.var_dir.exists() else PROJECT_ROOT
    disk = psutil.disk_usage(str(probe))
    per_day = sum(g["bytes_per_day"] for g in grown.values())
    days_left = disk.free / per_day if per_day > 0 else None
    gpus = gpu_headroom()
    details = {"window_days": window_days, "growth": grown, "growth_bytes_per_day": per_day,
               "disk": {"path": str(probe), "free_bytes": disk.free, "total_bytes": disk.total,
                        "used_pct": disk.percent},
               "days_until_full": round(days_left, 1) if days_left is not None else None,
               "gpu": gpus or "no CUDA device on this host"}  # fmt: skip
    left = "never at the current growth" if days_left is None else f"{days_left:.0f} days"
    summary = f"growth {per_day / 2**20:.2f} MiB/day; disk full in {left}; "
    summary += ", ".join(f"{g['device']} {g['headroom_pct']}% free" for g in gpus) if gpus else "no GPU"
    if days_left is not None and days_left < fail_days:
        return CheckResult("capacity_planning", FAIL, summary + f" (< {fail_days:g} days)", details)
    if (days_left is not None and days_left < warn_days) or any(g["headroom_pct"] < 10 for g in gpus):
        return CheckResult("capacity_planning", WARN, summary, details)
    return CheckResult("capacity_planning", PASS, summary, details)
