"""The validated store and the quarantine: where a batch goes after validation, each with a JSON index.

Validated store (``settings.validated_dir``): passing files under their own names, the task manifest as
``manifest.json`` and ``index.json`` (``{"version": 1, "files": {name: {sha256, task_id, rows, ...}}}``). The
index is written last and is the commit marker; files are never overwritten with different content.
The store's ``manifest.json`` is written here from validated entries only (the landing manifest's entries,
schema-checked, whose files are in the store, in the landing manifest's order); it is never a copy of the
landing manifest, and a task whose batch has not passed yet stays pending, out of it.

Quarantine (``settings.quarantine_dir``): one folder per rejection, ``<UTC time>-<sha12>-<safe name>/``,
holding the original bytes under the safe name and ``report.json``; ``index.json`` lists every rejection.
Nothing here deletes data: a move is a verified copy followed by the unlink of the source.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.ops.validation.config import FILE_MODE, MANIFEST_NAME
from include.ops.validation.prechecks import PrecheckFailure
from model.fsio import atomic_copy, atomic_write_json, atomic_write_text, file_lock, read_json, safe_move

if TYPE_CHECKING:
    from model.data import TaskManifest

INDEX_NAME = "index.json"
LOCK_NAME = ".index.lock"
INDEX_VERSION = 1


def utc_now() -> str:
    """Current UTC time, ISO-8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def safe_name(name: str) -> str:
    """A plain file name derived from any landed name (no separators, no leading dots, at most 100 chars)."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "_", name).replace("..", "_").lstrip("._-")
    return cleaned[-100:] or "unnamed"


def read_index(folder: Path) -> dict[str, Any]:
    """The index of a store folder (empty index if none yet); ValueError naming the file if it is garbled."""
    index = read_json(Path(folder) / INDEX_NAME, {"version": INDEX_VERSION})
    if not isinstance(index, dict):
        raise ValueError(f"{Path(folder) / INDEX_NAME} must hold a JSON object")
    return index


def find_validated(validated_dir: Path, checksum: str) -> tuple[str, dict[str, Any]] | None:
    """``(name, entry)`` of the validated file with this content, or None."""
    for name, entry in read_index(validated_dir).get("files", {}).items():
        if entry.get("sha256") == checksum:
            return name, entry
    return None


def check_not_conflicting(validated_dir: Path, name: str, checksum: str) -> None:
    """Raise ``conflicts_with_validated`` when ``name`` was validated before with different content."""
    entry = read_index(validated_dir).get("files", {}).get(name)
    if entry is not None and entry.get("sha256") != checksum:
        raise PrecheckFailure(
            "conflicts_with_validated",
            f"{name} was already validated with sha256 {entry.get('sha256')} on {entry.get('validated_at')}; "
            "validated batches are immutable (land a new task file instead)",
            {"validated_sha256": entry.get("sha256")},
        )


def landing_entries(manifest: Path | TaskManifest) -> TaskManifest:
    """The landing manifest's entries, held to the schema (ValidationSetupError naming the manifest if refused)."""
    from include.ops.validation.manifest_schema import ManifestRefused, load_landing_manifest
    from include.ops.validation.outcome import ValidationSetupError

    if not isinstance(manifest, str | Path):
        return manifest
    try:
        return load_landing_manifest(Path(manifest))
    except ManifestRefused as exc:
        raise ValidationSetupError(str(exc)) from exc


def check_manifest_compatible(validated_dir: Path, manifest: Path | TaskManifest) -> None:
    """Raise ``manifest_match`` when the landing manifest changes a task the validated store already holds."""
    from model.data import load_manifest

    current = Path(validated_dir) / MANIFEST_NAME
    if not current.exists():
        return
    old, new = load_manifest(current), landing_entries(manifest)
    held = read_index(validated_dir).get("files", {})
    where = "landing manifest" + (f" {manifest}" if isinstance(manifest, str | Path) else f" {new.name!r}")
    for spec in old.tasks:
        if spec.file not in held:
            continue
        try:
            now = new.task(spec.task_id)
        except KeyError:
            now = None
        if now is None or now.classes != spec.classes or now.file != spec.file:
            raise PrecheckFailure(
                "manifest_match",
                f"{where} changes validated task {spec.task_id!r} "
                f"({spec.file}, classes {spec.classes}) -> {now}; earlier tasks of a stream cannot change",
            )


def write_validated_manifest(validated_dir: Path, landing: TaskManifest, held: set[str]) -> Path:
    """Write the store's ``manifest.json``: the landing entries whose files are validated (``held``), in order."""
    from model.data import TaskManifest

    tasks = [spec for spec in landing.tasks if spec.file in held]
    manifest = TaskManifest(name=landing.name, num_classes=landing.num_classes, tasks=tasks)
    text = json.dumps(manifest.to_dict(), indent=2) + "\n"
    path = Path(validated_dir) / MANIFEST_NAME
    if not path.exists() or path.read_text(encoding="utf-8") != text:
        atomic_write_text(path, text, FILE_MODE)
    return path


def publish_validated(
    src: Path,
    name: str,
    checksum: str,
    manifest_path: Path | TaskManifest,
    validated_dir: Path,
    entry: dict[str, Any],
    recheck: Callable[[list[Path]], None] | None = None,
) -> tuple[Path, bool]:
    """Copy a passing file into the store, index it and write the store's manifest of validated entries.

    Returns (path, newly published). Runs under the store lock; the landing manifest is read (and held to the
    schema) here again, so the entries written are those of the manifest at commit time. ``recheck`` receives
    the store's task files at commit time so checks that depend on the store (leakage) see files validated
    concurrently; it raises PrecheckFailure to refuse.
    An identical file already indexed under ``name`` is not published again (returns False).
    """
    validated_dir = Path(validated_dir)
    validated_dir.mkdir(parents=True, exist_ok=True)
    dst = validated_dir / name
    with file_lock(validated_dir / LOCK_NAME):
        check_not_conflicting(validated_dir, name, checksum)
        index = read_index(validated_dir)
        files = index.setdefault("files", {})
        if files.get(name, {}).get("sha256") == checksum and dst.exists():
            return dst, False
        landing = landing_entries(manifest_path)
        if name not in {spec.file for spec in landing.tasks}:
            raise PrecheckFailure(
                "manifest_match", f"{name!r} is no longer a task file of the landing manifest"
            )
        check_manifest_compatible(validated_dir, landing)
        if recheck is not None:
            recheck(sorted(p for p in validated_dir.glob("*.csv") if p.name != name))
        atomic_copy(src, dst, expected_sha256=checksum, mode=FILE_MODE)
        write_validated_manifest(validated_dir, landing, {*files, name})
        files[name] = {**entry, "sha256": checksum, "path": str(dst)}
        index["version"] = INDEX_VERSION
        index["updated_at"] = utc_now()
        atomic_write_json(validated_dir / INDEX_NAME, index, FILE_MODE)
    return dst, True


def quarantine(
    src: Path, name: str, checksum: str, report: dict[str, Any], quarantine_dir: Path, move: bool = True
) -> tuple[Path, Path]:
    """Move (or copy) the original bytes into a new quarantine folder with ``report.json``; index it.

    Returns (quarantined file, report file). The copy is verified against ``checksum`` before the source
    is unlinked, so the quarantined bytes are always the landed bytes.
    """
    quarantine_dir = Path(quarantine_dir)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    plain = safe_name(name)
    folder = quarantine_dir / f"{stamp}-{checksum[:12]}-{plain}"
    folder.mkdir(parents=True, exist_ok=False)
    dst, report_path = folder / plain, folder / "report.json"
    atomic_write_json(report_path, {**report, "quarantined_file": str(dst)}, FILE_MODE)
    if move:
        safe_move(src, dst, expected_sha256=checksum, mode=FILE_MODE)
    else:
        atomic_copy(src, dst, expected_sha256=checksum, mode=FILE_MODE)
    with file_lock(quarantine_dir / LOCK_NAME):
        index = read_index(quarantine_dir)
        index.setdefault("entries", []).append(
            {
                "folder": folder.name,
                "file": str(dst),
                "original_name": name,
                "sha256": checksum,
                "check": report.get("check"),
                "stage": report.get("stage"),
                "reason": report.get("reason"),
                "source": report.get("source"),
                "quarantined_at": utc_now(),
            }
        )
        index["version"] = INDEX_VERSION
        atomic_write_json(quarantine_dir / INDEX_NAME, index, FILE_MODE)
    return dst, report_path


def mark_released(quarantine_dir: Path, folder_name: str, released_to: str) -> dict[str, Any]:
    """Record in the quarantine index that the file of ``folder_name`` was released; return its entry."""
    quarantine_dir = Path(quarantine_dir)
    with file_lock(quarantine_dir / LOCK_NAME):
        index = read_index(quarantine_dir)
        for entry in index.get("entries", []):
            if entry.get("folder") == folder_name:
                entry.setdefault("released", []).append({"to": released_to, "at": utc_now()})
                atomic_write_json(quarantine_dir / INDEX_NAME, index, FILE_MODE)
                return entry
    raise KeyError(f"no quarantine entry {folder_name!r} in {quarantine_dir / INDEX_NAME}")


def _new_quarantine_folder(quarantine_dir: Path, name: str, checksum: str) -> tuple[Path, str]:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    plain = safe_name(name)
    folder = Path(quarantine_dir) / f"{stamp}-{checksum[:12]}-{plain}"
    folder.mkdir(parents=True, exist_ok=False)
    return folder, plain


def _index_quarantined(quarantine_dir: Path, entry: dict[str, Any]) -> None:
    with file_lock(Path(quarantine_dir) / LOCK_NAME):
        index = read_index(quarantine_dir)
        index.setdefault("entries", []).append({**entry, "quarantined_at": utc_now()})
        index["version"] = INDEX_VERSION
        atomic_write_json(Path(quarantine_dir) / INDEX_NAME, index, FILE_MODE)


def quarantine_entry(
    src: Path, name: str, checksum: str, report: dict[str, Any], quarantine_dir: Path
) -> tuple[Path, Path]:
    """Move a landing entry that is not a regular file (symlink, folder, FIFO) into a new quarantine folder as is.

    ``os.rename`` moves the entry itself, so a link's target is never opened, copied or changed. A link that
    cannot be renamed (another file system) is recreated in the quarantine, then the original link unlinked;
    any other entry that cannot be renamed stays where it is, said in the report and the index entry.
    Returns (quarantined entry, report file).
    """
    import os

    folder, plain = _new_quarantine_folder(quarantine_dir, name, checksum)
    dst, report_path = folder / plain, folder / "report.json"
    moved = True
    try:
        os.rename(src, dst)
    except OSError:
        if not Path(src).is_symlink():
            moved, dst = False, Path(src)
        else:
            os.symlink(os.readlink(src), dst)
            os.unlink(src)
    report = {**report, "quarantined_file": str(dst), "moved": moved}
    atomic_write_json(report_path, report, FILE_MODE)
    _index_quarantined(
        quarantine_dir,
        {
            "folder": folder.name,
            "file": str(dst),
            "original_name": name,
            "sha256": checksum,
            **{k: report.get(k) for k in ("check", "stage", "reason", "source")},
            "moved": moved,
        },
    )
    return dst, report_path


RETRACTED_REASON = "retracted by operator"


def retract_validated(
    validated_dir: Path, quarantine_dir: Path, name: str, report: dict[str, Any]
) -> tuple[Path, Path, dict[str, Any]]:
    """Move validated batch ``name`` out of the store into the quarantine, unindex it, drop it from the manifest.

    Under the store lock: the bytes are moved (verified copy, then unlink) with ``report`` (reason
    :data:`RETRACTED_REASON`), then ``index.json`` loses the entry and the store's ``manifest.json`` the task; a
    manifest left without tasks is moved into the same quarantine folder (the next validated batch writes a new
    one). A rerun after a crash between the move and the index write finishes the job. Returns (quarantined
    file, report file, the removed index entry); KeyError naming the store when ``name`` is not validated.
    """
    from model.data import load_manifest
    from model.fsio import sha256_file

    validated_dir, quarantine_dir = Path(validated_dir), Path(quarantine_dir)
    with file_lock(validated_dir / LOCK_NAME):
        index = read_index(validated_dir)
        files = index.get("files", {})
        if name not in files:
            raise KeyError(
                f"{name!r} is not a validated batch of {validated_dir} (validated: {sorted(files)})"
            )
        entry = files[name]
        checksum = str(entry.get("sha256"))
        src = validated_dir / name
        full = {
            **report,
            "reason": RETRACTED_REASON,
            "check": "retracted",
            "stage": "retract",
            "sha256": checksum,
        }
        if src.exists():
            qfile, qreport = quarantine(src, name, checksum, full, quarantine_dir, move=True)
        else:  # moved by an interrupted retraction: find it in the quarantine index
            done = [
                e
                for e in read_index(quarantine_dir).get("entries", [])
                if e.get("sha256") == checksum and e.get("check") == "retracted"
            ]
            if not done:
                raise FileNotFoundError(
                    f"{src} is indexed as validated but missing, and not in the quarantine"
                )
            qfile = Path(done[-1]["file"])
            qreport = qfile.parent / "report.json"
        del files[name]
        index["updated_at"] = utc_now()
        atomic_write_json(validated_dir / INDEX_NAME, index, FILE_MODE)
        manifest_path = validated_dir / MANIFEST_NAME
        if manifest_path.exists():
            manifest = load_manifest(manifest_path)
            if any(spec.file != name and spec.file in files for spec in manifest.tasks):
                write_validated_manifest(validated_dir, manifest, set(files))
            else:
                safe_move(manifest_path, qfile.parent / MANIFEST_NAME, sha256_file(manifest_path), FILE_MODE)
    return qfile, qreport, entry
