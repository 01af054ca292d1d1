"""Backup throughput against a plain copy of the same files, and restore duration, on the demo's state.

    python -m bench.bench_backup [--quick] [--out bench/results/backup.json]

Source: the demo's state (``make demo``: checkpoints, MLflow store + artifacts, task data) when it exists,
read only; otherwise a small state learned here (``state: synthetic``). Backups and restores go to a temp
folder. Each repeat times, on a warm page cache and in alternating order:

- ``backup_seconds``: the data path of ``create_backup`` - every file copied with its sha256 computed on the
  same read (SQLite through the online backup API, secrets scrubbed), then made durable - from the
  manifest's phase timings (``copy_total``);
- ``backup_total_seconds``: the whole ``create_backup`` (adds the MLflow registry read, the champion's
  per-task evaluation and the manifest);
- ``copy_seconds``: ``shutil.copy2`` of the same source files into a fresh folder, made durable the same
  way (no hashing, a plain file copy of the SQLite store);
- ``restore_seconds``: ``restore_backup`` into a scratch target (verify every checksum, stage, swap);
  ``validate_seconds``: the validation after it (byte identity, aliases, accuracies), timed once.

``ratio`` = copy_seconds / backup_seconds (target >= 0.5). Medians over the repeats. ``--quick``: a 2-task
synthetic state when there is no demo state, 2 repeats; same fields.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_RATIO = 0.5


def _log(msg: str) -> None:
    print(f"[bench_backup] {msg}", file=sys.stderr, flush=True)


def has_demo_state(settings) -> bool:
    """True when ``settings`` points at a learned state with an MLflow store (``make demo`` ran)."""
    from include.ops.backup.mlflow_store import backend_kind, sqlite_path

    uri = settings.mlflow_tracking_uri
    return any(settings.checkpoint_dir.glob("task_*.pt")) and (
        backend_kind(uri) != "sqlite" or sqlite_path(uri).is_file()
    )


def build_state(var: Path, tasks: int, samples: int):
    """Learn ``tasks`` Split-Digits tasks into ``var`` and register them in a SQLite MLflow store; returns Settings."""
    from mlflow import MlflowClient

    from include.ops.settings import get_settings
    from model.config import TrainConfig
    from model.data import write_split_digits
    from model.learner import ContinualLearner

    base = get_settings()
    settings = base.replace(
        var_dir=var,
        data_dir=var / "data" / "split_digits",
        validated_dir=var / "validated",
        state_dir=var / "state",
        mlflow_tracking_uri=f"sqlite:///{var / 'mlflow' / 'mlflow.db'}",
    )
    manifest = write_split_digits(settings.data_dir)
    cfg = TrainConfig(epochs=1, max_samples_per_task=samples, finetune_epochs=1, device="cpu")
    learner = ContinualLearner(manifest, settings.state_dir, train_cfg=cfg)
    ids = [spec.task_id for spec in learner.manifest.tasks][:tasks]
    results = []
    for task_id in ids:
        _log(f"learning {task_id} for the synthetic state")
        results.append(learner.learn_task(task_id).to_dict())
    (var / "mlflow").mkdir(parents=True, exist_ok=True)
    client = MlflowClient(
        tracking_uri=settings.mlflow_tracking_uri, registry_uri=settings.mlflow_tracking_uri
    )
    exp = client.create_experiment(
        settings.mlflow_experiment, artifact_location=(var / "mlflow" / "artifacts").as_uri()
    )
    client.create_registered_model(settings.registered_model)
    version = None
    for result in results:
        run = client.create_run(exp, tags={"ct.task_id": result["task_id"], "ct.status": "learned",
                                           "ct.checkpoint_sha256": result["checkpoint_sha256"]})  # fmt: skip
        client.log_artifact(run.info.run_id, result["checkpoint_path"], artifact_path="checkpoint")
        mv = client.create_model_version(
            settings.registered_model,
            source=f"{run.info.artifact_uri}/checkpoint",
            run_id=run.info.run_id,
            tags={
                "checkpoint_path": result["checkpoint_path"],
                "checkpoint_sha256": result["checkpoint_sha256"],
            },
        )
        version = mv.version
    client.set_registered_model_alias(settings.registered_model, "champion", version)
    return settings


def source_files(settings) -> list[tuple[Path, str]]:
    """``(live file, path in a backup)`` of everything a backup reads: state, MLflow store, artifacts, data."""
    from include.ops.backup.mlflow_store import artifacts_dir, backend_kind, sqlite_path
    from include.ops.backup.sources import task_data, walk_files
    from include.ops.task_manifest import resolve_task_manifest

    files = [(p, f"state/{rel}") for rel, p in walk_files(settings.state_dir)]
    if backend_kind(settings.mlflow_tracking_uri) == "sqlite":
        files.append((sqlite_path(settings.mlflow_tracking_uri), "mlflow/mlflow.db"))
    files += [(p, f"mlflow/artifacts/{rel}") for rel, p in walk_files(artifacts_dir(settings))]
    task_manifest = resolve_task_manifest(settings)
    files += [(p, f"data/{rel}") for rel, p in task_data(task_manifest).files]
    if task_manifest.is_file():
        files.append((task_manifest, "data/manifest.json"))
    return files


def plain_copy(files: list[tuple[Path, str]], dest: Path) -> float:
    """Seconds to ``shutil.copy2`` every file to its backup path under ``dest``, durably (``cp -r`` + ``sync -f``).

    The same durability step as the backup's (one syncfs, see ``sync_files``), so the ratio isolates the
    cost of hashing on the way and of the consistent SQLite copy.
    """
    from include.ops.backup.layout import sync_files

    dest.mkdir(parents=True)
    start = time.perf_counter()
    copied = []
    for src, rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        copied.append(Path(shutil.copy2(src, target)))
    sync_files(dest, copied)
    return time.perf_counter() - start


def run(out_path: Path, quick: bool) -> dict:
    """Measure backup vs copy and restore; write and return the result record."""
    from include.ops.backup import RestoreTarget, create_backup, restore_backup, validate_restore
    from include.ops.backup.layout import read_manifest
    from include.ops.settings import get_settings

    repeats = 2 if quick else 7
    with tempfile.TemporaryDirectory(prefix="bench_backup_") as tmp:
        work = Path(tmp)
        settings = get_settings()
        kind = "demo"
        if not has_demo_state(settings):
            kind = "synthetic"
            settings = build_state(work / "var", tasks=2 if quick else 5, samples=64 if quick else 256)
        settings = settings.replace(
            backup_dir=work / "backups",
            reports_dir=work / "reports",
            lock_file=work / "maintenance.lock",
        )
        os.environ["CT_ENV_FILE"] = str(work / "bench.env")  # never read or write the project's .env
        files = source_files(settings)
        _log(f"{kind} state: {len(files)} files, {sum(p.stat().st_size for p, _ in files) / 1e6:.1f} MB")

        backup_s, backup_total_s, copy_s, restore_s, validate_s = [], [], [], [], []
        manifest = None
        for i in range(repeats + 1):  # the first round warms caches and imports and is not counted
            order = ("backup", "copy") if i % 2 == 0 else ("copy", "backup")
            for step in order:
                if step == "copy":
                    seconds = plain_copy(files, work / f"copy_{i}")
                    shutil.rmtree(work / f"copy_{i}")
                    if i:
                        copy_s.append(seconds)
                    continue
                start = time.perf_counter()
                result = create_backup(settings=settings)
                total = time.perf_counter() - start
                manifest = read_manifest(Path(result.path))
                if i:
                    backup_total_s.append(total)
                    backup_s.append(manifest.source["timings"]["copy_total"])
            target = RestoreTarget.scratch(work / f"restore_{i}")
            start = time.perf_counter()
            restored = restore_backup(manifest.backup_id, settings=settings, target=target)
            seconds = time.perf_counter() - start
            if i == repeats:  # validation (model evaluation) once: it is not what this benchmark compares
                start = time.perf_counter()
                report = validate_restore(
                    manifest.backup_id,
                    settings=settings,
                    target=target,
                    backup_root=Path(restored.backup_root),
                )
                validate_s.append(time.perf_counter() - start)
                if not report.ok:
                    raise SystemExit(f"restore validation failed: {report.problems}")
            shutil.rmtree(work / f"restore_{i}")
            for old in (settings.backup_dir).iterdir():
                if old.name != manifest.backup_id:
                    shutil.rmtree(old)
            if i:
                restore_s.append(seconds)
            _log(f"round {i}: backup {backup_s[-1] if i else 0:.3f}s copy {copy_s[-1] if i else 0:.3f}s "
                 f"restore {seconds:.3f}s")  # fmt: skip

    backup_med, copy_med = statistics.median(backup_s), statistics.median(copy_s)
    record = {
        "state": kind,
        "quick": quick,
        "repeats": repeats,
        "files": len(manifest.files),
        "bytes": manifest.total_bytes,
        "backup_seconds": round(backup_med, 4),
        "backup_total_seconds": round(statistics.median(backup_total_s), 4),
        "copy_seconds": round(copy_med, 4),
        "ratio": round(copy_med / backup_med, 3),
        "ratio_total": round(copy_med / statistics.median(backup_total_s), 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": copy_med / backup_med >= TARGET_RATIO,
        "backup_mb_per_s": round(manifest.total_bytes / 1e6 / backup_med, 1),
        "copy_mb_per_s": round(manifest.total_bytes / 1e6 / copy_med, 1),
        "restore_seconds": round(statistics.median(restore_s), 4),
        "validate_seconds": round(validate_s[0], 4),
        "phases_last_backup": manifest.source["timings"],
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(record, indent=2) + "\n")
    return record


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, run, print the record."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="small state, 2 repeats")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "backup.json")
    args = parser.parse_args(argv)
    record = run(args.out, args.quick)
    print(json.dumps(record, indent=2))
    if not record["meets_target"]:
        _log(f"ratio {record['ratio']} below target {TARGET_RATIO}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
