"""Which model the app serves: the MLflow ``champion`` (sha256-verified), else the newest good checkpoint."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from include.ops import tracking
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
    source: str  # "registry" or "checkpoint"
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
        self._lock = threading.Lock()

    def _device(self) -> Any:
        from model.training import resolve_device

        return resolve_device(self.serving.device)

    def _load_file(self, path: Path, expected_sha256: str | None) -> tuple[Any, dict[str, Any], dict, str]:
        """Verify and load one checkpoint onto the serving device; CheckpointError naming the file on any
        mismatch (registry tag checked before anything is unpickled, then the sidecar by ``load_model``)."""
        from model.checkpoint import CheckpointError
        from model.fsio import sha256_file
        from model.inference import load_model, optimize_for_tensorrt

        if not path.is_file():
            raise CheckpointError(f"checkpoint {path} does not exist")
        actual = sha256_file(path)
        if expected_sha256 is not None and actual != expected_sha256:
            raise CheckpointError(f"checkpoint {path} sha256 {actual} != registry tag {expected_sha256}")
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
        return LoadedModel(
            model=model,
            config=cfg,
            checkpoint_path=str(path),
            checkpoint_sha256=sha,
            task_id=meta.get("task_id"),
            classes_seen=[int(c) for c in classes] if classes else None,
            mean_retention=mean_retention,
            retention=retention,
            checkpoint_mtime=path.stat().st_mtime,
            loaded_at=time.time(),
            **extra,
        )

    def _from_registry(self) -> LoadedModel:
        """Resolve ``champion`` -> version tags -> verified checkpoint; ModelUnavailable with the reason."""
        uri = self.paths.mlflow_tracking_uri
        ok, reason = mlflow_reachable(uri, timeout=self.serving.registry_timeout_s)
        if not ok:
            raise ModelUnavailable(f"registry unreachable: {reason}")
        try:
            mv = tracking.mlflow_client(self.paths, read_only=True).get_model_version_by_alias(
                self.paths.registered_model, tracking.CHAMPION
            )
        except Exception as exc:  # MlflowException for a missing model/alias, connection errors
            raise ModelUnavailable(
                f"registry has no {tracking.CHAMPION!r} for {self.paths.registered_model!r}: {exc}"
            ) from exc
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

    def _from_checkpoints(self, why: str) -> LoadedModel:
        """Newest checkpoint in ``checkpoint_dir`` whose sidecar sha256 verifies and that loads."""
        from model.checkpoint import verify_checkpoint

        candidates = sorted(self.paths.checkpoint_dir.glob("task_*.pt"), key=lambda p: p.name, reverse=True)
        failures: list[str] = []
        for path in candidates:
            try:
                sha = verify_checkpoint(path)
                model, cfg, meta, actual = self._load_file(path, sha)
            except Exception as exc:
                failures.append(str(exc))
                log.warning("skipping checkpoint %s: %s", path.name, exc)
                continue
            issues = [f"serving fallback checkpoint {path.name}: {why}"]
            if failures:
                issues.append(f"skipped {len(failures)} newer checkpoint(s) that failed verification")
            return self._build(
                path, actual, model, cfg, meta, source="checkpoint", version=None, issues=issues
            )
        detail = "; ".join(failures) if failures else f"no checkpoints in {self.paths.checkpoint_dir}"
        raise ModelUnavailable(f"{why}; fallback failed: {detail}")

    def load(self) -> LoadedModel:
        """Load the champion (or the fallback) and make it current; ModelUnavailable keeps the old one."""
        with self._lock:
            try:
                try:
                    loaded = self._from_registry()
                except ModelUnavailable as exc:
                    log.warning("champion not loaded, trying checkpoints: %s", exc)
                    loaded = self._from_checkpoints(str(exc))
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
