"""Which model the app serves: the MLflow ``champion`` (sha256-verified), else the last champion recorded
locally by the gate (``include.ops.champion_record``), else none; and whether the served file is still intact."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from include.ops import tracking
from include.ops.champion_record import RECORD_FILE, read_champion_record
from include.ops.maintenance.probes import mlflow_reachable
from include.ops.settings import ServingSettings, Settings

log = logging.getLogger("include.serving")


class ModelUnavailable(RuntimeError):
    """No model could be loaded; the message lists why each source failed."""


@dataclass
class LoadedModel:
    """The served model and where it came from."""

    model: Any  # model.network.TinyTransformer in eval mode
    config: dict[str, Any]
    source: str  # "registry", or "champion_record" (the local fallback)
    version: str | None  # registry version, None for a checkpoint fallback
    checkpoint_path: str
    checkpoint_sha256: str
    task_id: str | None
    classes_seen: list[int] | None
    mean_retention: float | None
    retention: dict[str, float]
    checkpoint_mtime: float
    loaded_at: float
    issues: list[str] = field(default_factory=list)  # why this is not the normal champion path
    checkpoint_size: int = -1
    hashed_at: float = 0.0  # when the file's sha256 was last checked against ``checkpoint_sha256``
    file_issue: str | None = None  # the served file no longer matches (sticky until the next load)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for health and API responses."""
        now = time.time()
        return {
            "source": self.source,
            "version": self.version,
            "checkpoint_path": self.checkpoint_path,
            "checkpoint_sha256": self.checkpoint_sha256,
            "task_id": self.task_id,
            "classes_seen": self.classes_seen,
            "mean_retention": self.mean_retention,
            "retention": self.retention,
            "age_seconds": round(now - self.checkpoint_mtime, 1),
            "loaded_seconds_ago": round(now - self.loaded_at, 1),
            "hashed_seconds_ago": round(now - self.hashed_at, 1),
        }


def _retention(values: Any, task_ids: list[str]) -> dict[str, float]:
    """Retention per task from checkpoint metadata: a dict, or a list parallel to the learned tasks."""
    if isinstance(values, dict):
        pairs = values.items()
    elif isinstance(values, list | tuple) and len(values) == len(task_ids):
        pairs = zip(task_ids, values, strict=True)
    else:
        return {}
    return {str(k): v for k, v in ((k, tracking.finite(v)) for k, v in pairs) if v is not None}


class ModelStore:
    """Loads, holds and reloads the served model; ``current`` is swapped atomically on reload."""

    def __init__(self, paths: Settings, serving: ServingSettings) -> None:
        self.paths = paths
        self.serving = serving
        self.current: LoadedModel | None = None
        self.last_error: str | None = None
        self.registry_version: str | None = None  # the champion alias at the last lookup
        self.registry_checked_at: float | None = None
        self.registry_error: str | None = None
        self._lock = threading.Lock()
        self._hash_lock = threading.Lock()

    def _device(self) -> Any:
        from model.training import resolve_device

        return resolve_device(self.serving.device)

    def _load_file(
        self, path: Path, expected_sha256: str | None, expected_from: str = "registry tag"
    ) -> tuple[Any, dict[str, Any], dict, str]:
        """Verify and load one checkpoint onto the serving device; CheckpointError naming the file on any
        mismatch (registry tag checked before anything is unpickled, then the sidecar by ``load_model``)."""
        from model.checkpoint import CheckpointError
        from model.fsio import sha256_file
        from model.inference import load_model, optimize_for_tensorrt

        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
        actual = sha256_file(path)
        if expected_sha256 is not None and actual != expected_sha256:
            raise CheckpointError(f"checkpoint {path} sha256 {actual} != {expected_from} {expected_sha256}")
        device = self._device()
        model, cfg, meta = load_model(path, map_location=device)
        if self.serving.tensorrt:
            model = optimize_for_tensorrt(model, device)
        return model, cfg.to_dict(), meta, actual

    def _build(self, path: Path, sha: str, model: Any, cfg: dict, meta: dict, **extra: Any) -> LoadedModel:
        metrics = meta.get("metrics") or {}
        retention = _retention(metrics.get("retention"), meta.get("learned_tasks") or [])
        mean_retention = extra.pop("mean_retention", None)
        if mean_retention is None:
            mean_retention = tracking.finite(metrics.get("mean_retention", meta.get("mean_retention")))
        classes = meta.get("classes_seen")
        stat = path.stat()
        now = time.time()
        return LoadedModel(
            model=model,
            config=cfg,
            checkpoint_path=str(path),
            checkpoint_sha256=sha,
            task_id=meta.get("task_id"),
            classes_seen=[int(c) for c in classes] if classes else None,
            mean_retention=mean_retention,
            retention=retention,
            checkpoint_mtime=stat.st_mtime,
            checkpoint_size=stat.st_size,
            loaded_at=now,
            hashed_at=now,  # _load_file hashed it just now
            **extra,
        )

    def _champion_version(self) -> Any:
        """The registry's ``champion`` model version; ModelUnavailable with the reason (recorded for health)."""
        uri = self.paths.mlflow_tracking_uri
        self.registry_checked_at = time.time()
        ok, reason = mlflow_reachable(uri, timeout=self.serving.registry_timeout_s)
        if not ok:
            self.registry_error = f"registry unreachable: {reason}"
            raise ModelUnavailable(self.registry_error)
        try:
            mv = tracking.mlflow_client(self.paths, read_only=True).get_model_version_by_alias(
                self.paths.registered_model, tracking.CHAMPION
            )
        except Exception as exc:  # MlflowException for a missing model/alias, connection errors
            self.registry_error = (
                f"registry has no {tracking.CHAMPION!r} for {self.paths.registered_model!r}: {exc}"
            )
            raise ModelUnavailable(self.registry_error) from exc
        self.registry_version, self.registry_error = str(mv.version), None
        return mv

    def _from_registry(self) -> LoadedModel:
        """Resolve ``champion`` -> version tags -> verified checkpoint; ModelUnavailable with the reason."""
        mv = self._champion_version()
        tags = mv.tags or {}
        path, sha = tags.get("checkpoint_path"), tags.get("checkpoint_sha256")
        if not path or not sha:
            raise ModelUnavailable(f"version {mv.version} lacks checkpoint_path/checkpoint_sha256 tags")
        try:
            model, cfg, meta, actual = self._load_file(Path(path), sha)
        except Exception as exc:
            raise ModelUnavailable(f"champion version {mv.version}: {exc}") from exc
        return self._build(
            Path(path),
            actual,
            model,
            cfg,
            meta,
            source="registry",
            version=str(mv.version),
            mean_retention=tracking.finite(tags.get("mean_retention")),
        )

    def _from_record(self, why: str) -> LoadedModel:
        """The last champion the gate recorded locally (sha256-verified); never an ungated checkpoint."""
        try:
            record = read_champion_record(self.paths)
        except ValueError as exc:
            raise ModelUnavailable(f"{why}; fallback refused: {exc}") from exc
        if record is None:
            raise ModelUnavailable(
                f"{why}; no local champion record ({RECORD_FILE}), so no checkpoint known to have passed the gate"
            )
        path = record.checkpoint_path(self.paths)
        try:
            model, cfg, meta, actual = self._load_file(path, record.sha256, "champion record")
        except Exception as exc:
            raise ModelUnavailable(f"{why}; recorded champion v{record.version} refused: {exc}") from exc
        issues = [f"serving the last recorded champion v{record.version} ({path.name}): {why}"]
        return self._build(
            path, actual, model, cfg, meta, source="champion_record", version=record.version, issues=issues
        )

    def load(self) -> LoadedModel:
        """Load the champion (or the fallback) and make it current; ModelUnavailable keeps the old one."""
        with self._lock:
            try:
                try:
                    loaded = self._from_registry()
                except ModelUnavailable as exc:
                    log.warning("champion not loaded, trying the local champion record: %s", exc)
                    loaded = self._from_record(str(exc))
            except ModelUnavailable as exc:
                self.last_error = str(exc)
                log.error("no model loaded: %s", exc)
                raise
            self.current = loaded
            self.last_error = None
            log.info(
                "serving %s model version=%s checkpoint=%s sha256=%s",
                loaded.source, loaded.version, loaded.checkpoint_path, loaded.checkpoint_sha256[:12],
            )  # fmt: skip
            return loaded

    def verify(self) -> str | None:
        """Why the served checkpoint no longer matches what was loaded (None while it does): size and mtime on
        every call, the sha256 every ``verify_hash_interval_s``. A mismatch sticks until the next load."""
        loaded = self.current
        if loaded is None:
            return None
        if loaded.file_issue is None:
            loaded.file_issue = self._file_issue(loaded)
        return loaded.file_issue

    def _file_issue(self, loaded: LoadedModel) -> str | None:
        from model.fsio import sha256_file

        path = Path(loaded.checkpoint_path)
        try:
            stat = path.stat()
        except OSError as exc:
            return f"served checkpoint {path.name} is gone: {exc.strerror}"
        if (stat.st_size, stat.st_mtime) != (loaded.checkpoint_size, loaded.checkpoint_mtime):
            return f"served checkpoint {path.name} changed on disk since it was loaded (size/mtime)"
        if time.time() - loaded.hashed_at < self.serving.verify_hash_interval_s:
            return None
        if not self._hash_lock.acquire(blocking=False):  # another probe is hashing it right now
            return None
        try:
            actual = sha256_file(path)
            loaded.hashed_at = time.time()
        except OSError as exc:
            return f"served checkpoint {path.name} is unreadable: {exc.strerror}"
        finally:
            self._hash_lock.release()
        if actual != loaded.checkpoint_sha256:
            return f"served checkpoint {path.name} sha256 {actual[:12]} != loaded {loaded.checkpoint_sha256[:12]}"
        return None

    def follow_champion(self) -> bool:
        """Look up the ``champion`` alias; load it when it is not what is served. True when a new model was
        swapped in; a failed lookup or load keeps the current model (health reports why)."""
        try:
            version = str(self._champion_version().version)
        except ModelUnavailable:
            return False
        loaded = self.current
        if loaded is not None and loaded.source == "registry" and loaded.version == version:
            return False
        if loaded is None:
            try:
                return self.load().source == "registry"
            except ModelUnavailable:
                return False
        with self._lock:  # a model is served: swap only to the new champion, never to a fallback
            try:
                new = self._from_registry()
            except ModelUnavailable as exc:
                log.warning("champion v%s not followed, still serving v%s: %s", version, loaded.version, exc)
                return False
            self.current = new
        log.info("followed champion to v%s (%s)", new.version, Path(new.checkpoint_path).name)
        return True

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Probabilities (B, num_classes) for raw pixel rows (B, 64) in 0..16; ModelUnavailable if none."""
        import torch

        from model.inference import pixels_to_input, predict_proba

        loaded = self.current
        if loaded is None:
            raise ModelUnavailable(self.last_error or "no model loaded")
        with torch.inference_mode():
            probs = predict_proba(loaded.model, pixels_to_input(x), allowed_classes=loaded.classes_seen)
        return probs.cpu().numpy()
