"""What a backup reads from the live system: files, the task data training used, versions, checkpoint roles.

Everything here only reads; ``snapshot.py`` copies what these functions name into the backup folder.
"""

from __future__ import annotations

import json
import logging
import os
import platform
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from include.ops.backup.layout import FileEntry
from include.ops.settings import PROJECT_ROOT, get_settings

log = logging.getLogger(__name__)

PACKAGES = (
    "apache-airflow",
    "apache-airflow-providers-amazon",
    "mlflow",
    "torch",
    "numpy",
    "scikit-learn",
    "boto3",
    "prometheus-client",
)
DATA_MANIFEST = "manifest.json"  # the task manifest's name inside the backup's data/ folder


def code_version() -> dict[str, Any]:
    """Git revision of the project read from ``.git`` (no git process), or ``Settings.code_version``."""
    out: dict[str, Any] = {"project_version": _pyproject_version()}
    if rev := get_settings().code_version:
        out["git_rev"] = rev
        return out
    git = PROJECT_ROOT / ".git"
    try:
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = head[5:]
            out["git_ref"] = ref
            ref_file = git / ref
            if ref_file.exists():
                out["git_rev"] = ref_file.read_text().strip()
            elif (git / "packed-refs").exists():
                for line in (git / "packed-refs").read_text().splitlines():
                    if line.endswith(" " + ref):
                        out["git_rev"] = line.split()[0]
        else:
            out["git_rev"] = head
    except OSError:
        out["git_rev"] = None
    return out


def _pyproject_version() -> str | None:
    try:
        import tomllib

        return tomllib.loads((PROJECT_ROOT / "pyproject.toml").read_text())["project"]["version"]
    except (OSError, KeyError, ValueError):
        return None


def package_versions() -> dict[str, str]:
    """Installed versions of the packages a restore depends on, plus Python."""
    out = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def walk_files(root: Path) -> list[tuple[str, Path]]:
    """``(relative posix path, path)`` of regular files under ``root``; temp and hidden files are skipped."""
    if not root.is_dir():
        return []
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if name.startswith(".") or name.endswith(".tmp") or path.is_symlink() or not path.is_file():
                continue
            out.append((path.relative_to(root).as_posix(), path))
    return out


def fingerprint(files: list[tuple[str, Path]]) -> list[tuple[str, int, int]]:
    """``(path, size, mtime_ns)`` of each file that still exists: equal before and after = nothing changed."""
    out = []
    for rel, path in files:
        try:
            st = path.stat()
        except FileNotFoundError:
            continue
        out.append((rel, st.st_size, st.st_mtime_ns))
    return out


@dataclass(frozen=True)
class TaskData:
    """The task data a backup holds: its CSV files (path inside ``data/``, live path) and the manifest naming them."""

    files: list[tuple[str, Path]]
    manifest: bytes | None  # None: no task manifest, nothing to evaluate on


def task_data(task_manifest: Path) -> TaskData:
    """The files of ``task_manifest`` (the one ``resolve_task_manifest`` gives training) and its backup copy.

    A manifest may name files outside its folder (the effective manifest of a validated store names them by
    absolute path); those go to ``data/tasks/<task id>/<name>`` and the copy names them there, so the backup's
    ``data/manifest.json`` always resolves inside the backup. What the validated store derives from its files
    (row index, image statistics; found beside the task files) goes to ``data/<name>``, so a restored store
    refuses the same duplicates (both are also rebuilt from the files when missing).
    """
    if not task_manifest.is_file():
        return TaskData([], None)
    from model.data import load_manifest

    load_manifest(task_manifest)  # ValueError naming the file when it is malformed
    raw = json.loads(task_manifest.read_text(encoding="utf-8"))
    files, moved = [], False
    for spec in raw["tasks"]:
        live = task_manifest.parent / spec["file"]
        rel = Path(spec["file"])
        if rel.is_absolute() or ".." in rel.parts:
            rel = Path("tasks", re.sub(r"[^A-Za-z0-9_.-]", "_", str(spec["task_id"])), rel.name)
            spec["file"], moved = rel.as_posix(), True
        if live.is_file():
            files.append((rel.as_posix(), live))
    from include.ops.validation.image_stats import STATS_NAME
    from include.ops.validation.row_index import ROW_INDEX_NAME

    for folder in dict.fromkeys([task_manifest.parent, *(live.parent for _, live in files)]):
        found = [(name, folder / name) for name in (ROW_INDEX_NAME, STATS_NAME) if (folder / name).is_file()]
        if found:
            files.extend(found)
            break
    manifest = (json.dumps(raw, indent=2) + "\n").encode() if moved else task_manifest.read_bytes()
    return TaskData(files, manifest)


def _match_checkpoint(ckpts: dict[str, FileEntry], path: str | None, sha256: str | None) -> str | None:
    """Backup path of the checkpoint a tag/state points to: by sha256 first, else by file name."""
    if sha256:
        for rel, entry in ckpts.items():
            if entry.sha256 == sha256:
                return rel
    if path:
        name = Path(path).name
        for rel in ckpts:
            if Path(rel).name == name:
                return rel
    return None


def _checkpoints(entries: list[FileEntry]) -> dict[str, FileEntry]:
    return {e.path: e for e in entries if e.path.startswith("state/checkpoints/") and e.path.endswith(".pt")}


def checkpoint_references(
    entries: list[FileEntry], aliases: dict[str, dict[str, Any]], state_dir: Path
) -> dict[str, Any]:
    """Checkpoints of the backup a restore serves or resumes from: aliased ones and the newest one."""
    ckpts = _checkpoints(entries)
    roles: dict[str, list[str]] = {}
    for alias, info in aliases.items():
        match = _match_checkpoint(ckpts, info.get("checkpoint_path"), info.get("checkpoint_sha256"))
        if match:
            roles.setdefault(match, []).append(alias)
    latest = None
    state_file = state_dir / "learner_state.json"
    if state_file.is_file():
        try:
            latest_path = json.loads(state_file.read_text()).get("latest_checkpoint")
            latest = _match_checkpoint(ckpts, latest_path, None)
        except (ValueError, OSError):
            latest = None
    if latest is None and ckpts:
        latest = max(ckpts, key=lambda p: Path(p).name)
    if latest:
        roles.setdefault(latest, []).append("latest")
    return {
        "checkpoints": [
            {"path": path, "sha256": ckpts[path].sha256, "roles": sorted(r)}
            for path, r in sorted(roles.items())
        ]
    }


def unclaimed_checkpoints(entries: list[FileEntry], registry: dict[str, Any]) -> list[str]:
    """Checkpoints no MLflow run claims (``ct.checkpoint_sha256``): state ahead of MLflow, e.g. mid-training."""
    if not registry.get("run_ids"):
        return []
    claimed = set(registry.get("checkpoint_runs", {}))
    out = [path for path, entry in _checkpoints(entries).items() if entry.sha256 not in claimed]
    if out:
        log.warning("checkpoints without an MLflow run in this backup (training in flight?): %s", sorted(out))
    return sorted(out)
