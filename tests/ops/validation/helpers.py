"""Helpers shared by the validation tests (file builders and store snapshots)."""

from __future__ import annotations

from pathlib import Path


def task_text(split_digits: Path, k: int) -> str:
    """The CSV text of Split-Digits task ``k``."""
    return (split_digits.parent / f"task_{k}.csv").read_text()


def land(settings, name: str, data: bytes | str) -> Path:
    """Write a file into the landing zone (bytes as given) and return its path."""
    path = settings.landing_dir / name
    path.write_bytes(data.encode() if isinstance(data, str) else data)
    return path


def store_snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (missing folder: empty)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
