"""Remote copy of backups in S3: a content-addressed store driven through any boto3 S3 client.

Airflow-free: the client comes from the caller. The DAGs and ``make backup`` build it from the Airflow
``s3_backup`` connection (``include.airflow_glue.s3``); tests and other tools can pass any boto3 client.

Layout under ``<prefix>/``: file contents are content-addressed objects ``objects/sha256/<ab>/<sha256>`` (an
unchanged file is never uploaded twice), each backup is ``backups/<id>/manifest.json`` (the commit marker,
written after every object it names exists) plus ``backups/<id>/started.json`` written first. The server
checks every upload against its SHA-256 (``ChecksumSHA256``), so a torn upload is refused, not stored.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.ops.backup.layout import (
    BACKUP_ID_RE,
    CHUNK,
    MANIFEST_NAME,
    BackupError,
    BackupNotFound,
    Manifest,
    validate_backup_id,
)
from include.ops.settings import Settings, get_settings

log = logging.getLogger(__name__)

DEFAULT_CONN_ID = "s3_backup"
DEFAULT_BUCKET: str = Settings.model_fields["backup_s3_bucket"].default
DEFAULT_PREFIX: str = Settings.model_fields["backup_s3_prefix"].default
MULTIPART_BYTES = 256 << 20  # single PUT below this; multipart above (S3 caps a PUT at 5 GiB)


class RemoteUnavailable(BackupError):
    """S3 could not be reached or refused a request (after the client's retries)."""


@dataclass(frozen=True)
class RemoteBackup:
    """A backup as seen in S3: complete when its manifest exists."""

    backup_id: str
    complete: bool
    last_modified: datetime


class S3Store:
    """Content-addressed backup store in one bucket/prefix, driven through a boto3 S3 client."""

    def __init__(self, client: Any, bucket: str, prefix: str = DEFAULT_PREFIX) -> None:
        if not bucket:
            raise ValueError("S3 backup bucket name is empty")
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")

    def describe(self) -> dict[str, str]:
        """Where backups go (no credentials)."""
        return {"bucket": self.bucket, "prefix": self.prefix}

    def _key(self, *parts: str) -> str:
        return "/".join(p for p in (self.prefix, *parts) if p)

    def object_key(self, sha256: str) -> str:
        """Key of the object holding the file with this content hash."""
        return self._key("objects", "sha256", sha256[:2], sha256)

    def manifest_key(self, backup_id: str) -> str:
        """Key of a backup's manifest (its commit marker)."""
        return self._key("backups", validate_backup_id(backup_id), MANIFEST_NAME)

    def started_key(self, backup_id: str) -> str:
        """Key of the marker written when a backup starts uploading."""
        return self._key("backups", validate_backup_id(backup_id), "started.json")

    def _call(self, what: str, fn: Any, **kwargs: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            return fn(**kwargs)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            raise RemoteUnavailable(
                f"S3 {what} in s3://{self.bucket}/{self.prefix} failed: {code} {exc}"
            ) from exc
        except BotoCoreError as exc:
            raise RemoteUnavailable(f"S3 {what} in s3://{self.bucket}/{self.prefix} failed: {exc}") from exc

    def check_bucket(self) -> None:
        """Raise RemoteUnavailable naming the bucket if it cannot be reached."""
        self._call("head_bucket", self.client.head_bucket, Bucket=self.bucket)

    def _list(self, prefix: str) -> Iterator[dict[str, Any]]:
        token = None
        while True:
            kwargs: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix}
            if token:
                kwargs["ContinuationToken"] = token
            page = self._call("list_objects_v2", self.client.list_objects_v2, **kwargs)
            yield from page.get("Contents", [])
            if not page.get("IsTruncated"):
                return
            token = page["NextContinuationToken"]

    def existing_objects(self) -> dict[str, dict[str, Any]]:
        """``{sha256: {size, last_modified}}`` of every content object already in the bucket."""
        out = {}
        for item in self._list(self._key("objects", "sha256") + "/"):
            sha = item["Key"].rsplit("/", 1)[-1]
            out[sha] = {"size": int(item["Size"]), "last_modified": item["LastModified"]}
        return out

    def upload(self, path: Path, sha256: str, size: int) -> None:
        """Upload one file as its content object; the server verifies the SHA-256 on receipt.

        Files above ``MULTIPART_BYTES`` go through the transfer manager (multipart, SHA-256 per part).
        """
        key = self.object_key(sha256)
        if size > MULTIPART_BYTES:
            extra = {"ChecksumAlgorithm": "SHA256", "Metadata": {"sha256": sha256}}
            self._call(f"upload of {path.name}", self.client.upload_file, Filename=str(path), Bucket=self.bucket,
                       Key=key, ExtraArgs=extra)  # fmt: skip
            return
        checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
        with open(path, "rb") as body:
            self._call(
                f"upload of {path.name}",
                self.client.put_object,
                Bucket=self.bucket,
                Key=key,
                Body=body,
                ContentLength=size,
                ChecksumSHA256=checksum,
                Metadata={"sha256": sha256},
            )

    def put_json(self, key: str, data: bytes) -> None:
        """Write a small JSON object (manifest, marker) checked by SHA-256 on the server."""
        checksum = base64.b64encode(hashlib.sha256(data).digest()).decode()
        self._call(
            f"put of {key}",
            self.client.put_object,
            Bucket=self.bucket,
            Key=key,
            Body=data,
            ContentType="application/json",
            ChecksumSHA256=checksum,
        )

    def mark_started(self, backup_id: str) -> None:
        """Record that ``backup_id`` started uploading (lets cleanup find abandoned uploads)."""
        body = json.dumps({"backup_id": backup_id, "started_at": datetime.now(UTC).isoformat()}).encode()
        self.put_json(self.started_key(backup_id), body)

    def put_manifest(self, manifest: Manifest) -> None:
        """Commit a backup remotely: every object it names must already exist."""
        self.put_json(self.manifest_key(manifest.backup_id), manifest.to_json())

    def get_manifest(self, backup_id: str) -> Manifest:
        """Download and validate a backup's manifest; BackupNotFound when S3 has none."""
        from botocore.exceptions import ClientError

        key = self.manifest_key(backup_id)
        try:
            obj = self.client.get_object(Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                raise BackupNotFound(
                    f"no complete backup {backup_id} in s3://{self.bucket}/{self.prefix}"
                ) from None
            raise RemoteUnavailable(f"S3 get of {key} failed: {exc}") from exc
        except Exception as exc:
            raise RemoteUnavailable(f"S3 get of {key} failed: {exc}") from exc
        return Manifest.from_json(obj["Body"].read(), where=f"s3://{self.bucket}/{key}")

    def list_backups(self) -> list[RemoteBackup]:
        """Every backup id under ``backups/``, complete (manifest present) or not, oldest first."""
        found: dict[str, RemoteBackup] = {}
        for item in self._list(self._key("backups") + "/"):
            parts = item["Key"].rsplit("/", 2)
            if len(parts) < 3 or not BACKUP_ID_RE.fullmatch(parts[-2]):
                continue
            backup_id, name = parts[-2], parts[-1]
            prev = found.get(backup_id)
            complete = name == MANIFEST_NAME or (prev is not None and prev.complete)
            modified = item["LastModified"] if prev is None else max(prev.last_modified, item["LastModified"])
            found[backup_id] = RemoteBackup(backup_id, complete, modified)
        return [found[k] for k in sorted(found)]

    def download(self, sha256: str, dst: Path) -> tuple[int, str]:
        """Download a content object to ``dst`` hashing it on the way; return ``(size, sha256)`` as read."""
        key = self.object_key(sha256)
        obj = self._call(f"get of {key}", self.client.get_object, Bucket=self.bucket, Key=key)
        digest = hashlib.sha256()
        size = 0
        dst.parent.mkdir(parents=True, exist_ok=True)
        body = obj["Body"]
        try:
            with open(dst, "wb") as f:
                while chunk := body.read(CHUNK):
                    digest.update(chunk)
                    f.write(chunk)
                    size += len(chunk)
                f.flush()
                os.fsync(f.fileno())
        except Exception as exc:
            if isinstance(exc, BackupError):
                raise
            raise RemoteUnavailable(f"S3 download of {key} failed: {exc}") from exc
        return size, digest.hexdigest()

    def delete_keys(self, keys: list[str]) -> None:
        """Delete keys in batches of 1000."""
        for i in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[i : i + 1000]]
            self._call(
                "delete_objects", self.client.delete_objects, Bucket=self.bucket, Delete={"Objects": batch}
            )

    def delete_backup(self, backup_id: str) -> None:
        """Remove a backup's manifest and markers (its objects go in :meth:`gc_objects`)."""
        keys = [item["Key"] for item in self._list(self._key("backups", validate_backup_id(backup_id)) + "/")]
        # the manifest goes first: from then on the backup is incomplete, never half-restorable
        keys.sort(key=lambda k: not k.endswith(MANIFEST_NAME))
        for key in keys:
            self.delete_keys([key])

    def gc_objects(self, referenced: set[str], grace_seconds: float, dry_run: bool = False) -> list[str]:
        """Delete content objects no manifest references, older than ``grace_seconds``; return their hashes."""
        now = time.time()
        doomed = [
            sha
            for sha, info in self.existing_objects().items()
            if sha not in referenced and now - info["last_modified"].timestamp() >= grace_seconds
        ]
        if doomed and not dry_run:
            self.delete_keys([self.object_key(sha) for sha in doomed])
        return sorted(doomed)


StoreFactory = Callable[[], "S3Store | None"]  # makes the configured store, or None when S3 is not set up


def store_location(bucket: str | None = None, prefix: str | None = None) -> tuple[str, str]:
    """``(bucket, prefix)`` of the backup store.

    Bucket: ``bucket`` (e.g. the connection's ``service_config.s3.bucket_name``), else
    ``Settings.backup_s3_bucket`` (``CT_BACKUP_S3_BUCKET``, default ``continual-transformer-backups``).
    Prefix: ``prefix``, else ``Settings.backup_s3_prefix`` (``CT_BACKUP_S3_PREFIX``, default
    ``continual-transformer``).
    """
    settings = get_settings()
    bucket = bucket or settings.backup_s3_bucket
    prefix = prefix if prefix is not None else settings.backup_s3_prefix
    return bucket, prefix
