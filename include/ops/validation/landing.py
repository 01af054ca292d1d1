"""The landing zone: a local folder by default, an S3 prefix when the Airflow glue passes one.

New task batches arrive as CSV files beside the task ``manifest.json``. Uploaders must land files atomically
(write a dot-file or ``*.tmp``, then rename; an S3 PUT is atomic): names starting with ``.`` and ending in
``.tmp``/``.part`` are ignored. Local files are read in place; S3 objects are downloaded to a staging folder.
A rejected local file is moved into the quarantine; a rejected S3 object is moved (verified copy, then
delete) to the quarantine prefix. Passing files stay where they landed and are skipped by checksum later.
This module is Airflow-free: :class:`S3Landing` calls an injected client with the S3Hook's methods, built
from the ``s3`` connection by ``include.airflow_glue.landing_s3``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import urlsplit

from include.ops.validation.config import FILE_MODE, MANIFEST_NAME
from include.ops.validation.prechecks import entry_kind
from include.ops.validation.store import safe_name
from model.fsio import atomic_copy, atomic_writer, sha256_file

log = logging.getLogger(__name__)
IGNORED_SUFFIXES = (".tmp", ".part")


class LandingError(RuntimeError):
    """The landing zone cannot be used (bad S3 location, a quarantine copy that differs); names the zone."""


@dataclass(frozen=True)
class LandedFile:
    """One entry of the landing zone: name as landed, where it is, size, content checksum (when known), kind.

    ``kind`` is ``file`` for a regular file (every S3 object), else ``symlink``, ``directory`` or ``special``:
    such an entry is rejected (``precheck.file_type``) and moved as it is, never followed.
    """

    name: str
    location: str  # absolute local path (a link's own path, not its target), or s3://bucket/key
    size: int
    checksum: str | None = None
    kind: str = "file"

    def to_dict(self) -> dict[str, Any]:
        """XCom-friendly form."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LandedFile:
        """Inverse of ``to_dict``."""
        return cls(
            str(data["name"]),
            str(data["location"]),
            int(data["size"]),
            data.get("checksum"),
            str(data.get("kind") or "file"),
        )


class Landing(Protocol):
    """What validation needs of a landing zone (:class:`LocalLanding` and :class:`S3Landing` provide it)."""

    kind: str

    def describe(self) -> str: ...
    def fetch_manifest(self, staging_dir: Path) -> Path | None: ...
    def list_files(self) -> list[LandedFile]: ...
    def fetch(self, item: LandedFile, staging_dir: Path) -> tuple[Path, bool]: ...
    def quarantine_source(self, item: LandedFile, folder_name: str) -> str | None: ...
    def land(self, src: Path, name: str) -> str: ...


class S3Object(Protocol):
    """An object handle of the client: enough to stream its bytes."""

    def download_fileobj(self, fileobj: BinaryIO) -> None: ...


class S3Client(Protocol):
    """The S3 calls the landing zone makes, as the amazon provider's ``S3Hook`` names them."""

    def check_for_key(self, key: str, bucket_name: str | None = None) -> bool: ...
    def get_key(self, key: str, bucket_name: str | None = None) -> S3Object: ...
    def iter_file_metadata(self, prefix: str, bucket_name: str | None = None) -> Iterator[dict[str, Any]]: ...
    def head_object(self, key: str, bucket_name: str | None = None) -> dict[str, Any] | None: ...
    def copy_object(
        self, source_bucket_key: str, dest_bucket_key: str, source_bucket_name: str, dest_bucket_name: str
    ) -> Any: ...
    def delete_objects(self, bucket: str, keys: list[str]) -> None: ...
    def load_file(
        self, filename: str, key: str, bucket_name: str | None = None, replace: bool = False
    ) -> None: ...


def parse_s3_uri(uri: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix/`` -> ``("bucket", "some/prefix/")``; LandingError for anything else."""
    parts = urlsplit(uri)
    if parts.scheme != "s3" or not parts.netloc:
        raise LandingError(f"{uri!r} is not an s3://bucket/prefix/ location")
    return parts.netloc, parts.path.lstrip("/")


def _ignored(name: str) -> bool:
    return name == MANIFEST_NAME or name.startswith(".") or name.endswith(IGNORED_SUFFIXES)


class LocalLanding:
    """A landing folder on local disk (``settings.landing_dir``)."""

    kind = "local"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def describe(self) -> str:
        """Where the zone is, for messages."""
        return str(self.folder)

    def fetch_manifest(self, staging_dir: Path) -> Path | None:
        """The zone's ``manifest.json`` (read in place), or None if it has none."""
        path = self.folder / MANIFEST_NAME
        return path if path.is_file() else None

    def list_files(self) -> list[LandedFile]:
        """Every entry but the ignored names, sorted by name; a symlink, folder or special file is listed with its
        kind (and rejected by validation), never followed."""
        if not self.folder.is_dir():
            return []
        items = []
        folder = self.folder.resolve()
        for path in sorted(self.folder.iterdir()):
            if _ignored(path.name):
                continue
            kind = entry_kind(path)
            items.append(LandedFile(path.name, str(folder / path.name), path.lstat().st_size, kind=kind))
        return items

    def fetch(self, item: LandedFile, staging_dir: Path) -> tuple[Path, bool]:
        """Local path of the bytes and whether it is a staged copy (never, here)."""
        return Path(item.location), False

    def quarantine_source(self, item: LandedFile, folder_name: str) -> str | None:
        """Nothing to do: the local file itself was moved into the quarantine."""
        return None

    def land(self, src: Path, name: str) -> str:
        """Copy ``src`` into the zone as ``name`` atomically; return where it landed."""
        dst = self.folder / name
        atomic_copy(src, dst, mode=FILE_MODE)
        return str(dst)


class S3Landing:
    """A landing prefix in S3, read and moved through ``client`` (an S3Hook, injected by the Airflow glue)."""

    kind = "s3"

    def __init__(self, client: S3Client, landing_uri: str, quarantine_uri: str) -> None:
        self.client = client
        self.bucket, prefix = parse_s3_uri(landing_uri)
        self.prefix = prefix.rstrip("/") + "/" if prefix else ""
        self.q_bucket, q_prefix = parse_s3_uri(quarantine_uri)
        self.q_prefix = q_prefix.rstrip("/") + "/" if q_prefix else ""
        if self.q_bucket == self.bucket and self.q_prefix.startswith(self.prefix):
            raise LandingError(
                f"quarantine {quarantine_uri} must not lie inside the landing prefix {landing_uri}"
            )

    def describe(self) -> str:
        """Where the zone is, for messages."""
        return f"s3://{self.bucket}/{self.prefix}"

    def _download(self, key: str, dst: Path) -> Path:
        with atomic_writer(dst, FILE_MODE) as f:
            self.client.get_key(key, self.bucket).download_fileobj(f)
        return dst

    def fetch_manifest(self, staging_dir: Path) -> Path | None:
        """Download the zone's ``manifest.json`` into ``staging_dir``; None if the prefix has none."""
        key = self.prefix + MANIFEST_NAME
        if not self.client.check_for_key(key, self.bucket):
            return None
        return self._download(key, Path(staging_dir) / MANIFEST_NAME)

    def list_files(self) -> list[LandedFile]:
        """Candidate objects under the prefix (names relative to it; nested keys kept, pre-checks reject them)."""
        items = []
        for meta in self.client.iter_file_metadata(prefix=self.prefix, bucket_name=self.bucket):
            key = meta["Key"]
            name = key[len(self.prefix) :]
            if not name or key.endswith("/") or ("/" not in name and _ignored(name)):
                continue
            items.append(LandedFile(name, f"s3://{self.bucket}/{key}", int(meta.get("Size", 0))))
        return sorted(items, key=lambda i: i.name)

    def fetch(self, item: LandedFile, staging_dir: Path) -> tuple[Path, bool]:
        """Download the object to a staging file (named by a hash of its key); returns (path, staged=True)."""
        key = item.location.split("/", 3)[3]
        digest = hashlib.sha256(key.encode()).hexdigest()[:16]
        return self._download(key, Path(staging_dir) / f"{digest}-{safe_name(item.name)}"), True

    def quarantine_source(self, item: LandedFile, folder_name: str) -> str:
        """Move the rejected object to ``<quarantine prefix><folder_name>/<safe name>``; return its URI."""
        key = item.location.split("/", 3)[3]
        dest = f"{self.q_prefix}{folder_name}/{safe_name(item.name)}"
        source_head = self.client.head_object(key, self.bucket) or {}
        self.client.copy_object(
            source_bucket_key=key,
            dest_bucket_key=dest,
            source_bucket_name=self.bucket,
            dest_bucket_name=self.q_bucket,
        )
        copied = self.client.head_object(dest, self.q_bucket) or {}
        same = copied.get("ContentLength") == source_head.get("ContentLength") and copied.get(
            "ETag"
        ) == source_head.get("ETag")
        if not same:
            raise LandingError(
                f"copy of s3://{self.bucket}/{key} to s3://{self.q_bucket}/{dest} differs; source kept"
            )
        self.client.delete_objects(self.bucket, [key])
        return f"s3://{self.q_bucket}/{dest}"

    def land(self, src: Path, name: str) -> str:
        """Upload ``src`` as ``<prefix><name>`` (an S3 PUT is atomic); return its URI."""
        self.client.load_file(
            filename=str(src), key=self.prefix + name, bucket_name=self.bucket, replace=True
        )
        return f"s3://{self.bucket}/{self.prefix}{name}"


def land_task_stream(manifest_path: Path, landing_dir: Path) -> list[Path]:
    """Copy a task stream (manifest first, then each task file) into ``landing_dir`` atomically; return the CSVs.

    Files already landed with identical bytes are left untouched, so re-landing is idempotent.
    """
    from model.data import load_manifest

    manifest_path, landing_dir = Path(manifest_path), Path(landing_dir)
    manifest = load_manifest(manifest_path)
    landing_dir.mkdir(parents=True, exist_ok=True)
    pairs = [(manifest_path, landing_dir / MANIFEST_NAME)]
    for spec in manifest.tasks:
        src = manifest_path.parent / spec.file
        if Path(spec.file).name != spec.file or not src.is_file():
            raise FileNotFoundError(
                f"task file {spec.file!r} of manifest {manifest_path} is missing or not a plain name"
            )
        pairs.append((src, landing_dir / spec.file))
    landed = []
    for src, dst in pairs:
        if not (
            dst.exists() and dst.stat().st_size == src.stat().st_size and sha256_file(dst) == sha256_file(src)
        ):
            atomic_copy(src, dst, mode=FILE_MODE)
        if dst.name != MANIFEST_NAME:
            landed.append(dst)
    return landed
