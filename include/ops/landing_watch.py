"""What the landing-folder watcher counts as "a new file": the Airflow-free half of event-driven ingestion.

A scan lists the regular files of the landing folder (no symlinks, folders or dot/temp files: the 10-minute
poll of ``data_validation`` still judges those), waits until a file's size and mtime held still for one scan
(a file being written is not announced half-way), then hashes it. A content hash not seen before is recorded
in ``<state_dir>/landing_seen.json`` (atomically, under a lock) *before* it is announced, so a restarted
triggerer never announces it again (at most once; the poll is the safety net). Nothing in the folder is ever
moved, changed or deleted here.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from model.fsio import atomic_write_json, file_lock, read_json, sha256_file

SEEN_FILE = "landing_seen.json"
PARTIAL_SUFFIXES = (".tmp", ".part", ".partial", ".crdownload")


@dataclass(frozen=True)
class LandedFile:
    """A file whose content was not announced before."""

    name: str
    path: str
    sha256: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (the trigger event's payload)."""
        return asdict(self)


@dataclass
class FolderWatch:
    """The scanning state of one folder: ``(size, mtime_ns)`` per name at the previous scan."""

    directory: Path
    seen_path: Path
    previous: dict[str, tuple[int, int]] = field(default_factory=dict)

    def scan(self) -> list[LandedFile]:
        """One scan: the files that stopped changing and whose content is new, recorded as seen."""
        now = _listing(self.directory)
        stable = [name for name, stat in sorted(now.items()) if self.previous.get(name) == stat]
        self.previous = now
        if not stable:
            return []
        found = []
        with file_lock(self.seen_path.with_suffix(".lock"), timeout=30):
            seen: dict[str, Any] = read_json(self.seen_path, {})
            for name in stable:
                path = self.directory / name
                try:
                    digest = sha256_file(path)
                except OSError:  # gone or unreadable since the listing: the next scan sees it again
                    self.previous.pop(name, None)
                    continue
                if digest in seen:
                    continue
                seen[digest] = {"name": name, "seen_at": time.time()}
                found.append(LandedFile(name, str(path), digest, now[name][0]))
            if found:
                self.seen_path.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_json(self.seen_path, seen)
        return found


def _listing(directory: Path) -> dict[str, tuple[int, int]]:
    """``name -> (size, mtime_ns)`` of the folder's regular, non-hidden, non-partial files ({} if missing)."""
    out = {}
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return {}
    for entry in entries:
        if entry.name.startswith(".") or entry.name.endswith(PARTIAL_SUFFIXES):
            continue
        try:
            stat = entry.lstat()
        except OSError:
            continue
        if entry.is_symlink() or not entry.is_file():
            continue
        out[entry.name] = (stat.st_size, stat.st_mtime_ns)
    return out


def s3_records(body: str) -> list[dict[str, Any]]:
    """The created objects of one S3 event notification (an SQS message body); [] for anything else
    (``s3:TestEvent``, deletions, a body that is not such a notification)."""
    import json
    from urllib.parse import unquote_plus

    try:
        data = json.loads(body)
    except (TypeError, ValueError):
        return []
    records = data.get("Records") if isinstance(data, dict) else None
    out = []
    for rec in records if isinstance(records, list) else []:
        if not isinstance(rec, dict) or not str(rec.get("eventName", "")).startswith("ObjectCreated"):
            continue
        s3 = rec.get("s3") or {}
        obj, bucket = s3.get("object") or {}, (s3.get("bucket") or {}).get("name")
        if not bucket or not obj.get("key"):
            continue
        out.append({
            "bucket": bucket, "key": unquote_plus(str(obj["key"])), "size": obj.get("size"),
            "etag": obj.get("eTag"), "event_time": rec.get("eventTime"),
        })  # fmt: skip
    return out
