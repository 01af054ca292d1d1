"""``ContinualLearner``: learn one task at a time, evaluate on every task seen, checkpoint, resume after a crash.

State on disk (``state_dir``):
- ``checkpoints/task_{idx:03d}_{task_id}.pt`` + ``.sha256``: everything needed to continue after task idx.
- ``learner_state.json``: a summary written after each checkpoint (learned tasks, accuracy matrix, paths).
The checkpoints are the source of truth; on start the newest one whose sha256 verifies is loaded.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

from model.capacity import CAPACITY_KEY, STATE_FILENAME, StreamCapacity, read_capacity
from model.checkpoint import CheckpointError, load_checkpoint, read_sidecar, save_checkpoint
from model.config import ModelConfig, TrainConfig
from model.data import TaskData, TaskManifest, load_manifest, load_task_csv
from model.fsio import atomic_write_bytes, sha256_file
from model.metrics import AccuracyMatrix, EvalSet, summarize, task_accuracies
from model.network import TinyTransformer
from model.seeding import capture_rng_state, restore_rng_state, seed_everything
from model.strategies import Strategy, TaskContext, UnlearningRefused, get_strategy
from model.training import make_optimizer, resolve_device, train_task

logger = logging.getLogger("model.training")

CHECKPOINT_DIRNAME = "checkpoints"
FORMAT_VERSION = 1
_CKPT_RE = re.compile(r"^task_(\d{3,})_(.+)\.pt$")


def checkpoint_name(task_index: int, task_id: str) -> str:
    """File name of the checkpoint written after learning the ``task_index``-th task."""
    return f"task_{task_index:03d}_{task_id}.pt"


def list_checkpoints(checkpoint_dir: Path) -> list[tuple[int, Path]]:
    """``(task_index, path)`` of every checkpoint file in ``checkpoint_dir``, newest task first."""
    found = []
    for path in Path(checkpoint_dir).glob("task_*.pt"):
        match = _CKPT_RE.match(path.name)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found, key=lambda item: (item[0], item[1].stat().st_mtime), reverse=True)


@dataclass
class LearnResult:
    """What learning one task produced: the accuracy matrix so far, retention metrics and the checkpoint."""

    task_id: str
    task_index: int
    task_ids: list[str]  # learned order = rows and columns of acc_matrix
    acc_matrix: list[list[float | None]]  # None above the diagonal
    accuracies: dict[str, float]
    retention: dict[str, float]
    retention_chance_corrected: dict[str, float]
    mean_retention: float  # over earlier tasks; 1.0 after the first task (nothing to forget yet)
    mean_retention_chance_corrected: float
    avg_acc: float
    bwt: float
    forgetting: float
    epoch_losses: list[float]
    checkpoint_path: str
    checkpoint_sha256: str
    param_count: int
    strategy_memory_bytes: int
    stored_exemplars: int
    train_seconds: float
    device: str
    model_config: dict[str, Any]
    train_config: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable dict (XCom, MLflow, reports)."""
        return asdict(self)


def _metric_fields(ids: list[str], metrics: dict) -> dict:
    """The LearnResult fields taken from ``model.metrics.summarize`` output, per task where it is a list."""
    return {
        "retention": dict(zip(ids, metrics["retention"], strict=True)),
        "retention_chance_corrected": dict(zip(ids, metrics["retention_chance_corrected"], strict=True)),
        **{
            k: metrics[k]
            for k in ("mean_retention", "mean_retention_chance_corrected", "avg_acc", "bwt", "forgetting")
        },
    }


class ContinualLearner:
    """Owns the model, optimizer and strategy of one task stream, persisted under ``state_dir``."""

    def __init__(
        self,
        manifest_path: Path,
        state_dir: Path,
        model_cfg: ModelConfig | None = None,
        train_cfg: TrainConfig | None = None,
        capacity: StreamCapacity | None = None,
    ) -> None:
        """``capacity`` sizes a new stream's model when ``state_dir`` has none recorded (``model.capacity``)."""
        self.manifest_path = Path(manifest_path)
        self.manifest: TaskManifest = load_manifest(self.manifest_path)
        self.state_dir = Path(state_dir)
        self.checkpoint_dir = self.state_dir / CHECKPOINT_DIRNAME
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        self.skipped_checkpoints: list[str] = []  # newer checkpoints that failed verification on start
        self._data_cache: dict[str, TaskData] = {}

        payload, path = self._latest_good_checkpoint()
        if payload is not None:
            saved_model_cfg = ModelConfig.from_dict(payload["model_config"])
            if payload["model_config"].get("param_budget") is None:
                # a checkpoint from before the parameter budget existed has none: its model is kept as it was
                saved_model_cfg = dataclasses.replace(saved_model_cfg, param_budget=None)
            if model_cfg is not None and model_cfg != saved_model_cfg:
                raise ValueError(f"model_cfg differs from the one checkpoint {path} was trained with")
            model_cfg = saved_model_cfg
            saved_train_cfg = TrainConfig.from_dict(payload["train_config"])
            train_cfg = train_cfg or saved_train_cfg
            for key in ("strategy", "scenario"):
                if getattr(train_cfg, key) != getattr(saved_train_cfg, key):
                    raise ValueError(
                        f"train_cfg.{key}={getattr(train_cfg, key)!r} but checkpoint {path} was trained with "
                        f"{getattr(saved_train_cfg, key)!r}; use a new state_dir to change it"
                    )
        if model_cfg is None:
            # classes and budget from the stream's recorded capacity, never from the manifest; a manifest that
            # grows task by task must not cap max_tasks at its first size
            default = StreamCapacity(ModelConfig.num_classes, ModelConfig.param_budget)
            cap = read_capacity(self.state_dir) or capacity or default
            model_cfg = ModelConfig(
                num_classes=cap.num_classes,
                param_budget=cap.param_budget,
                max_tasks=max(ModelConfig.max_tasks, len(self.manifest.tasks)),
            )
        self.train_cfg = train_cfg or TrainConfig()
        if payload is None and self.train_cfg.strategy == "analytic" and not model_cfg.expansion_dim:
            # a new analytic stream: its head reads a random expansion seeded like the rest of the model
            model_cfg = dataclasses.replace(
                model_cfg, expansion_dim=self.train_cfg.analytic_features, expansion_seed=self.train_cfg.seed
            )
        self.model_cfg = model_cfg
        if self.manifest.num_classes > model_cfg.num_classes:
            raise ValueError(
                f"manifest {self.manifest_path} has {self.manifest.num_classes} classes but the model's head has "
                f"{model_cfg.num_classes} (the stream's class capacity)"
            )

        self.device = resolve_device(self.train_cfg.device)
        seed_everything(self.train_cfg.seed)  # the initial weights depend on the seed only
        self.model = TinyTransformer(model_cfg).to(self.device)
        self.param_count = self.model.num_parameters()
        self.optimizer = make_optimizer(self.model, self.train_cfg)
        self.strategy: Strategy = get_strategy(self.train_cfg.strategy, self.model, self.train_cfg)
        self.learned_tasks: list[str] = []
        self.task_classes: list[list[int]] = []
        self.matrix = AccuracyMatrix()
        self.checkpoints: list[dict[str, Any]] = []
        # per learned task: the sha256 of the file it was learned from and its index when learned
        self.learned_from: dict[str, dict[str, Any]] = {}
        self.unlearned: list[dict[str, Any]] = []  # tasks removed by unlearn_task; never learned again
        self.resumed_from: Path | None = None
        if payload is not None:
            self._restore(payload)
            # the payload lists earlier checkpoints only; the one just loaded is the last good one now
            self.checkpoints.append(
                {
                    "task_id": payload["task_id"],
                    "task_index": int(payload["task_index"]),
                    "file": path.name,
                    "sha256": read_sidecar(path),
                }
            )
            self.resumed_from = path
            logger.info("resumed from checkpoint %s (learned %s)", path, self.learned_tasks)

    # ---- state ----------------------------------------------------------------------------------------

    def _latest_good_checkpoint(self) -> tuple[dict | None, Path | None]:
        """Newest checkpoint that verifies and loads; corrupted newer ones are logged and skipped."""
        for _, path in list_checkpoints(self.checkpoint_dir):
            try:
                return load_checkpoint(path), path
            except CheckpointError as exc:
                logger.warning("skipping checkpoint: %s", exc)
                self.skipped_checkpoints.append(str(path))
        return None, None

    def _restore(self, payload: dict) -> None:
        """Load model, optimizer, strategy, history and RNG state from a checkpoint payload."""
        self.model.load_state_dict(payload["model_state"])
        self.optimizer.load_state_dict(payload["optimizer_state"])
        self.strategy.load_state_dict(payload["strategy_state"])
        self.learned_tasks = list(payload["learned_tasks"])
        self.task_classes = [list(c) for c in payload["task_classes"]]
        self.matrix = AccuracyMatrix(payload["acc_matrix"])
        self.checkpoints = [dict(c) for c in payload["checkpoints"]]
        self.learned_from = {k: dict(v) for k, v in payload.get("learned_from", {}).items()}
        self.unlearned = [dict(u) for u in payload.get("unlearned", [])]
        restore_rng_state(payload["rng_state"])

    def _reload_last_good(self) -> None:
        """Throw away in-memory progress of a failed task: back to the last checkpoint, or to the fresh model."""
        if self.checkpoints:
            payload = load_checkpoint(
                self.checkpoint_dir / self.checkpoints[-1]["file"], map_location=self.device
            )
            self._restore(payload)
            return
        seed_everything(self.train_cfg.seed)
        self.model.load_state_dict(TinyTransformer(self.model_cfg).state_dict())
        self.optimizer = make_optimizer(self.model, self.train_cfg)
        self.strategy = get_strategy(self.train_cfg.strategy, self.model, self.train_cfg)

    @property
    def latest_checkpoint(self) -> Path | None:
        """Path of the checkpoint of the last learned task, or None before the first one."""
        return self.checkpoint_dir / self.checkpoints[-1]["file"] if self.checkpoints else None

    # ---- data -----------------------------------------------------------------------------------------

    def task_data(self, task_id: str) -> TaskData:
        """The task's CSV, validated against the manifest and the model (cached)."""
        if task_id not in self._data_cache:
            spec = self.manifest.task(task_id)
            # confined to the manifest's folder (or its data roots): ValueError naming the file otherwise
            path = self.manifest.task_path(task_id, self.manifest_path.parent)
            data = load_task_csv(path)
            if data.x_train.shape[1] != self.model_cfg.num_features:
                raise ValueError(
                    f"task file {path} has {data.x_train.shape[1]} features, model expects {self.model_cfg.num_features}"
                )
            labels = set(torch.cat([data.y_train, data.y_test]).tolist())
            if not labels <= set(spec.classes):
                raise ValueError(
                    f"task file {path} has labels {sorted(labels - set(spec.classes))} not in {spec.classes}"
                )
            self._data_cache[task_id] = data
        return self._data_cache[task_id]

    def next_task(self) -> str | None:
        """First manifest task not learned yet, or None when the stream is done."""
        for spec in self.manifest.tasks:
            if spec.task_id not in self.learned_tasks:
                return spec.task_id
        return None

    # ---- learning -------------------------------------------------------------------------------------

    def evaluate(self) -> dict[str, float]:
        """Test accuracy on every learned task with the current model, in learning order (``task_accuracies``)."""
        tasks = [
            EvalSet(task_id, classes, self.task_data(task_id).x_test, self.task_data(task_id).y_test)
            for task_id, classes in zip(self.learned_tasks, self.task_classes, strict=True)
        ]
        return task_accuracies(self.model, tasks, self.train_cfg.scenario, self.device)

    def learn_task(
        self, task_id: str, on_epoch_end: Callable[[int, float], None] | None = None
    ) -> LearnResult:
        """Train on ``task_id`` from the latest checkpoint, evaluate on all tasks seen, checkpoint atomically.

        Any task of the manifest not learned yet may come next; rows of the accuracy matrix follow the
        learning order. ValueError for a learned or unknown task or beyond ``max_tasks``. On any failure
        (e.g. LossDivergedError) the in-memory state returns to the last checkpoint and nothing is written.
        """
        if task_id in self.learned_tasks:
            raise ValueError(f"task {task_id!r} is already learned (learned: {self.learned_tasks})")
        if any(u["task_id"] == task_id for u in self.unlearned):
            raise ValueError(
                f"task {task_id!r} was unlearned; it is not learned again (learner state {self.state_dir})"
            )
        try:
            spec = self.manifest.task(task_id)
        except KeyError as exc:
            raise ValueError(str(exc.args[0])) from None
        if len(self.learned_tasks) >= self.model_cfg.max_tasks:
            raise ValueError(f"model capacity is {self.model_cfg.max_tasks} tasks; refusing {task_id!r}")
        task_index = len(self.learned_tasks)
        cfg = self.train_cfg
        data = self.task_data(task_id).subsample_train(cfg.max_samples_per_task, cfg.seed + task_index)
        ctx = TaskContext(
            task_index=task_index,
            task_id=task_id,
            classes=tuple(spec.classes),
            past_classes=tuple(tuple(c) for c in self.task_classes),
            scenario=cfg.scenario,
            num_classes=self.model_cfg.num_classes,
        )
        logger.info(
            "learning task %s (index %d, classes %s, %d samples) with %s/%s on %s",
            task_id, task_index, spec.classes, len(data.y_train), cfg.strategy, cfg.scenario, self.device,
        )  # fmt: skip
        start = time.perf_counter()
        task_file_sha = sha256_file(self.manifest.task_path(task_id, self.manifest_path.parent))
        try:
            if self.strategy.closed_form:  # no SGD: the strategy solves its head from the task's rows
                losses = self.strategy.fit_task(self.model, ctx, data.x_train, data.y_train)
            else:
                losses = train_task(
                    self.model, self.optimizer, self.strategy, data.x_train, data.y_train, ctx, cfg, self.device,
                    on_epoch_end,
                )  # fmt: skip
        except BaseException:
            self._reload_last_good()
            raise
        train_seconds = time.perf_counter() - start
        assert self.model.num_parameters() == self.param_count, (
            "parameter count changed while learning a task"
        )

        self.learned_tasks.append(task_id)
        self.task_classes.append(list(spec.classes))
        self.learned_from[task_id] = {"sha256": task_file_sha, "task_index": task_index}
        accuracies = self.evaluate()
        self.matrix.update(list(accuracies.values()))
        metrics = summarize(self.matrix.result(), self.task_classes, cfg.scenario)
        run_facts = {  # kept in the checkpoint so a crash before tracking can be recorded from it alone
            "epoch_losses": list(losses),
            "train_seconds": train_seconds,
            "device": str(self.device),
            "strategy_memory_bytes": self.strategy.memory_bytes(),
            "stored_exemplars": self.strategy.stored_exemplars(),
        }
        path, digest = self._save(task_index, task_id, metrics, run_facts)
        ids = self.learned_tasks
        result = LearnResult(
            task_id=task_id,
            task_index=task_index,
            task_ids=list(ids),
            acc_matrix=self.matrix.result(),
            accuracies=accuracies,
            **_metric_fields(ids, metrics),
            epoch_losses=losses,
            checkpoint_path=str(path),
            checkpoint_sha256=digest,
            param_count=self.param_count,
            strategy_memory_bytes=self.strategy.memory_bytes(),
            stored_exemplars=self.strategy.stored_exemplars(),
            train_seconds=train_seconds,
            device=str(self.device),
            model_config=self.model_cfg.to_dict(),
            train_config=cfg.to_dict(),
        )
        self._write_state_file(result)
        logger.info(
            "learned task %s: avg_acc %.4f mean_retention %.4f (chance-corrected %.4f) in %.1fs",
            task_id, result.avg_acc, result.mean_retention, result.mean_retention_chance_corrected, train_seconds,
        )  # fmt: skip
        return result

    def unlearn_task(self, task_id: str) -> LearnResult:
        """Remove learned task ``task_id`` exactly, evaluate the remaining tasks, checkpoint; closed-form only.

        The task's rows are read again from its file, which must hash to the sha256 recorded when it was
        learned. Returns the LearnResult of the state after removal (``task_id`` = the newest task still
        learned); the task is recorded in ``unlearned`` and ``learn_task`` refuses it from then on.
        UnlearningRefused (nothing changed) when the strategy cannot unlearn, the task is not learned or is
        the only one, or its file is gone or changed.
        """
        if not self.strategy.closed_form:
            self.strategy.unlearn(self.model, None, None, None)  # type: ignore[arg-type]  # refuses, naming why
        if task_id not in self.learned_tasks:
            raise UnlearningRefused(f"task {task_id!r} is not learned (learned: {self.learned_tasks})")
        if len(self.learned_tasks) == 1:
            raise UnlearningRefused(
                f"task {task_id!r} is the only learned task: nothing would remain (start a new stream)"
            )
        record = self.learned_from.get(task_id)
        if record is None:
            raise UnlearningRefused(
                f"task {task_id!r} has no record of the file it was learned from (an older checkpoint)"
            )
        path = self.manifest.task_path(task_id, self.manifest_path.parent)
        if not path.is_file():
            raise UnlearningRefused(
                f"task {task_id!r}: its file {path} is gone; the exact rows learned cannot be removed"
            )
        actual = sha256_file(path)
        if actual != record["sha256"]:
            raise UnlearningRefused(
                f"task {task_id!r}: its file {path} has sha256 {actual} but was learned from {record['sha256']}: refused"
            )
        position = self.learned_tasks.index(task_id)
        cfg = self.train_cfg
        self._data_cache.pop(task_id, None)
        data = self.task_data(task_id).subsample_train(
            cfg.max_samples_per_task, cfg.seed + int(record["task_index"])
        )
        ctx = TaskContext(
            task_index=int(record["task_index"]),
            task_id=task_id,
            classes=tuple(self.task_classes[position]),
            past_classes=tuple(tuple(c) for c in self.task_classes[:position]),
            scenario=cfg.scenario,
            num_classes=self.model_cfg.num_classes,
        )
        start = time.perf_counter()
        try:
            self.strategy.unlearn(self.model, ctx, data.x_train, data.y_train)
        except BaseException:
            self._reload_last_good()
            raise
        classes = self.task_classes.pop(position)
        self.learned_tasks.pop(position)
        del self.learned_from[task_id]
        self.unlearned.append(
            {
                "task_id": task_id,
                "sha256": record["sha256"],
                "classes": classes,
                "at": datetime.now(UTC).isoformat(),
            }
        )
        # the matrix loses the task's row and column; its last row becomes the state after the removal
        rows = [
            [v for j, v in enumerate(row) if j != position]
            for i, row in enumerate(self.matrix.rows)
            if i != position
        ]
        rows[-1] = list(self.evaluate().values())
        self.matrix = AccuracyMatrix(rows)
        metrics = summarize(self.matrix.result(), self.task_classes, cfg.scenario)
        run_facts = {
            "epoch_losses": [],
            "train_seconds": time.perf_counter() - start,
            "device": str(self.device),
            "strategy_memory_bytes": self.strategy.memory_bytes(),
            "stored_exemplars": self.strategy.stored_exemplars(),
            "unlearned": task_id,
        }
        newest = self.learned_tasks[-1]
        self._save(len(self.learned_tasks) - 1, newest, metrics, run_facts, label=f"unlearn_{task_id}")
        logger.info("unlearned task %s (classes %s); learned now %s", task_id, classes, self.learned_tasks)
        return self.result_from_checkpoint(newest)

    def result_from_checkpoint(self, task_id: str) -> LearnResult:
        """The LearnResult of a learned task rebuilt from its own verified checkpoint (when a crash lost it).

        The newest task's rebuild also rewrites ``learner_state.json`` (a crash may have come before it)."""
        entries = [c for c in self.checkpoints if c["task_id"] == task_id]
        if not entries:
            raise ValueError(f"task {task_id!r} has no checkpoint in {self.checkpoint_dir}")
        path = self.checkpoint_dir / entries[-1]["file"]
        payload = load_checkpoint(path)
        ids = list(payload["learned_tasks"])
        matrix = AccuracyMatrix(payload["acc_matrix"]).result()
        metrics, facts = payload["metrics"], payload.get("run_facts", {})
        result = LearnResult(
            task_id=task_id,
            task_index=int(payload["task_index"]),
            task_ids=ids,
            acc_matrix=matrix,
            accuracies=dict(zip(ids, matrix[-1], strict=True)),
            **_metric_fields(ids, metrics),
            epoch_losses=list(facts.get("epoch_losses", [])),
            checkpoint_path=str(path),
            checkpoint_sha256=entries[-1]["sha256"],
            param_count=self.param_count,
            strategy_memory_bytes=int(facts.get("strategy_memory_bytes", 0)),
            stored_exemplars=int(facts.get("stored_exemplars", 0)),
            train_seconds=float(facts.get("train_seconds", 0.0)),
            device=str(facts.get("device", "")),
            model_config=dict(payload["model_config"]),
            train_config=dict(payload["train_config"]),
        )
        if task_id == self.learned_tasks[-1]:
            self._write_state_file(result)
        return result

    def _next_sequence(self) -> int:
        """File index of the next checkpoint: one past the last one's (an unlearning also takes one)."""
        indices = [int(m.group(1)) for c in self.checkpoints if (m := _CKPT_RE.match(c["file"]))]
        return max(indices, default=-1) + 1

    def _save(
        self,
        task_index: int,
        task_id: str,
        metrics: dict,
        run_facts: dict | None = None,
        label: str | None = None,
    ) -> tuple[Path, str]:
        """Write the checkpoint of the task just learned; stale checkpoints of an abandoned future are moved aside.

        ``label`` names the file instead of ``task_id`` (an unlearning's checkpoint)."""
        sequence = max(task_index, self._next_sequence())  # == task_index unless a task was unlearned
        for index, stale in list_checkpoints(self.checkpoint_dir):
            if index >= sequence:
                # left by a run whose later tasks were rolled back (e.g. a corrupted checkpoint was skipped)
                stale.replace(stale.with_name(stale.name + ".orphaned"))
                logger.warning(
                    "moved stale checkpoint %s aside (task index %d >= %d)", stale, index, task_index
                )
        path = self.checkpoint_dir / checkpoint_name(sequence, label or task_id)
        payload = {
            "format_version": FORMAT_VERSION,
            "model_state": self.model.state_dict(),
            "optimizer_state": self.optimizer.state_dict(),
            "strategy_name": self.train_cfg.strategy,
            "strategy_state": self.strategy.state_dict(),
            "task_index": task_index,
            "task_id": task_id,
            "learned_tasks": list(self.learned_tasks),
            "task_classes": [list(c) for c in self.task_classes],
            "classes_seen": sorted({c for classes in self.task_classes for c in classes}),
            "scenario": self.train_cfg.scenario,
            "acc_matrix": [list(row) for row in self.matrix.rows],
            "metrics": metrics,
            "run_facts": run_facts or {},
            # earlier checkpoints only: this file's own hash can only live beside it, in the sidecar
            "checkpoints": [dict(c) for c in self.checkpoints],
            "rng_state": capture_rng_state(),
            "model_config": self.model_cfg.to_dict(),
            "train_config": self.train_cfg.to_dict(),
            "manifest_name": self.manifest.name,
            "learned_from": {k: dict(v) for k, v in self.learned_from.items()},
            "unlearned": [dict(u) for u in self.unlearned],
        }
        digest = save_checkpoint(path, payload)
        self.checkpoints.append(
            {"task_id": task_id, "task_index": task_index, "file": path.name, "sha256": digest}
        )
        return path, digest

    def _write_state_file(self, result: LearnResult) -> None:
        """Atomically write ``learner_state.json``, the human/DAG-readable summary of the learner."""
        state = {
            "updated_at": datetime.now(UTC).isoformat(),
            "manifest": str(self.manifest_path),
            "manifest_name": self.manifest.name,
            "strategy": self.train_cfg.strategy,
            "scenario": self.train_cfg.scenario,
            "learned_tasks": list(self.learned_tasks),
            "unlearned_tasks": [u["task_id"] for u in self.unlearned],
            "acc_matrix": result.acc_matrix,
            "latest_checkpoint": result.checkpoint_path,
            "latest_sha256": result.checkpoint_sha256,
            "checkpoints": [{**c, "path": str(self.checkpoint_dir / c["file"])} for c in self.checkpoints],
            "metrics": {
                k: getattr(result, k)
                for k in ("avg_acc", "mean_retention", "mean_retention_chance_corrected", "bwt", "forgetting")
            },
            "param_count": result.param_count,
            "strategy_memory_bytes": result.strategy_memory_bytes,
            "stored_exemplars": result.stored_exemplars,
            CAPACITY_KEY: StreamCapacity(self.model_cfg.num_classes, self.model_cfg.param_budget).to_dict(),
        }
        atomic_write_bytes(self.state_dir / STATE_FILENAME, (json.dumps(state, indent=2) + "\n").encode())
