"""The one MLflow module: the client factory, run reads, experiment setup, per-task runs, registry, the gate.

Everything else that talks to MLflow gets its client from :func:`mlflow_client`, turns metric values into
JSON-safe floats with :func:`finite` and reads a run's headline with :func:`run_summary`. ``mlflow`` is
imported lazily so that importers (the Airflow plugin, the CLI, DAG files) stay cheap to load.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from include.ops.settings import PROJECT_ROOT, Settings

log = logging.getLogger(__name__)

TAG_TASK_ID = "ct.task_id"
TAG_TASK_INDEX = "ct.task_index"
TAG_DAG_ID = "ct.dag_id"
TAG_DAG_RUN_ID = "ct.dag_run_id"
TAG_STATUS = "ct.status"
STATUS_LEARNED = "learned"
CHAMPION = "champion"
CHALLENGER = "challenger"
PYFUNC_CODE = PROJECT_ROOT / "include" / "ops" / "pyfunc_model.py"
# MLflow 3's UI reads this experiment tag to choose the "Model training" view over the GenAI one
EXPERIMENT_KIND_TAG = "mlflow.experimentKind"
EXPERIMENT_KIND = "custom_model_development"
# headline metrics of a learned run, as logged by log_result (docs/conventions.md)
SUMMARY_METRICS = (
    "mean_retention",
    "min_retention",
    "mean_retention_cc",
    "avg_acc",
    "bwt",
    "forgetting",
    "new_task_acc",
    "loss",
)


@dataclass
class GateDecision:
    """Outcome of the promotion gate for one registered model version."""

    task_id: str
    version: str
    passed: bool
    alias: str
    reasons: list[str] = field(default_factory=list)
    new_task_acc: float | None = None  # what was learned (include/ops/run_report.py): shown with the decision
    min_retention: float | None = None
    mean_retention: float | None = None
    mlflow_run_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form for XCom."""
        return asdict(self)


def mlflow_client(settings: Settings | str, *, read_only: bool = False):  # -> mlflow.MlflowClient
    """The project's MlflowClient: tracking and model registry both at ``settings.mlflow_tracking_uri``
    (or at ``settings`` itself when it is a URI string).

    By default (writers) MLflow's fluent API (``mlflow.start_run``, ``mlflow.log_*``) is pointed at the same
    store and a local SQLite store's folder is created. ``read_only=True`` is for readers, which must never
    create a store: it changes nothing in the process, and raises FileNotFoundError for a ``sqlite:///`` store
    that does not exist (MLflow would create an empty one on the spot)."""
    import mlflow

    uri = settings if isinstance(settings, str) else settings.mlflow_tracking_uri
    if read_only and sqlite_store_missing(uri):
        raise FileNotFoundError(f"MLflow store {uri.removeprefix('sqlite:///')} does not exist")
    if not read_only:
        if uri.startswith("sqlite:///"):
            Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        mlflow.set_tracking_uri(uri)  # the fluent registry follows it unless set on its own
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def sqlite_store_missing(tracking_uri: str) -> bool:
    """True for a ``sqlite:///`` URI whose file does not exist: nothing was tracked there yet."""
    return (
        tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file()
    )


def finite(value: Any) -> float | None:
    """``value`` as a float, or None when missing, not a number, NaN or infinite (JSON has no NaN)."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def run_link(ui_url: str, experiment_id: str, run_id: str) -> str:
    """MLflow UI address of a run."""
    return f"{ui_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}"


def run_summary(run: Any, ui_url: str | None = None) -> dict[str, Any]:
    """Identity, timing (unix ms) and headline metrics of one training run, JSON-safe.

    Keys: run_id, run_name, experiment_id, task_id, task_index, dag_id, dag_run_id, status, start_time_ms,
    end_time_ms, url (None without ``ui_url``) and one finite-or-None value per :data:`SUMMARY_METRICS`."""
    info, metrics, tags = run.info, run.data.metrics, run.data.tags
    index = str(tags.get(TAG_TASK_INDEX, ""))
    return {
        "run_id": info.run_id,
        "run_name": info.run_name,
        "experiment_id": info.experiment_id,
        "task_id": tags.get(TAG_TASK_ID),
        "task_index": int(index) if index.isdigit() else None,
        "dag_id": tags.get(TAG_DAG_ID),
        "dag_run_id": tags.get(TAG_DAG_RUN_ID),
        "status": info.status,
        "start_time_ms": info.start_time,
        "end_time_ms": info.end_time,
        "url": run_link(ui_url, info.experiment_id, info.run_id) if ui_url else None,
        **{name: finite(metrics.get(name)) for name in SUMMARY_METRICS},
    }


def ensure_experiment(settings: Settings) -> str:
    """Create the project's experiment if missing (local artifact root next to a SQLite store); return its id.

    The experiment (an older untagged one too) carries ``mlflow.experimentKind=custom_model_development``,
    the kind MLflow 3 uses to tell model-training experiments from GenAI ones; in the UI's "Model training"
    workspace it opens on its runs table."""
    mlc = mlflow_client(settings)
    exp = mlc.get_experiment_by_name(settings.mlflow_experiment)
    if exp is not None:
        if exp.tags.get(EXPERIMENT_KIND_TAG) != EXPERIMENT_KIND:
            mlc.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
        return exp.experiment_id
    location = None
    if settings.mlflow_tracking_uri.startswith("sqlite:///"):
        db = Path(settings.mlflow_tracking_uri.removeprefix("sqlite:///"))
        location = (db.parent / "artifacts").resolve().as_uri()
    try:
        return mlc.create_experiment(
            settings.mlflow_experiment,
            artifact_location=location,
            tags={EXPERIMENT_KIND_TAG: EXPERIMENT_KIND},
        )
    except Exception:  # a concurrent creator won the race
        exp = mlc.get_experiment_by_name(settings.mlflow_experiment)
        if exp is None:
            raise
        return exp.experiment_id


def learned_runs(client: Any, experiment_id: str) -> list[Any]:
    """Every run of the experiment tagged as a learned task, oldest first."""
    return list(
        client.search_runs(
            [experiment_id],
            filter_string=f"tags.`{TAG_STATUS}` = '{STATUS_LEARNED}'",
            order_by=["attributes.start_time ASC"],
            max_results=5000,
        )
    )


def learned_task_ids(settings: Settings) -> list[str]:
    """Task ids recorded as learned in MLflow, oldest first: MLflow is the record of what has been learned."""
    mlc = mlflow_client(settings)
    exp = mlc.get_experiment_by_name(settings.mlflow_experiment)
    if exp is None:
        return []
    seen: list[str] = []
    for run in learned_runs(mlc, exp.experiment_id):
        task_id = run.data.tags.get(TAG_TASK_ID)
        if task_id and task_id not in seen:
            seen.append(task_id)
    return seen


def _dag_run_filter(dag_run_id: str, **tags: str) -> str:
    """The search filter of the runs a DAG run opened, narrowed by exact tag values."""
    clauses = [f"tags.`{TAG_DAG_RUN_ID}` = '{dag_run_id.replace(chr(39), '')}'"]
    clauses += [f"tags.`{key}` = '{value.replace(chr(39), '')}'" for key, value in tags.items()]
    return " and ".join(clauses)


def find_run(settings: Settings, dag_run_id: str, task_id: str):  # -> mlflow.entities.Run | None
    """The MLflow run a given DAG run opened for a task, if any (makes retries idempotent)."""
    mlc = mlflow_client(settings)
    exp_id = ensure_experiment(settings)
    runs = mlc.search_runs(
        [exp_id], filter_string=_dag_run_filter(dag_run_id, **{TAG_TASK_ID: task_id}), max_results=1
    )
    return runs[0] if runs else None


def learned_runs_of(settings: Settings, dag_run_id: str) -> list[Any]:
    """The runs of the tasks a DAG run learned, oldest first ([] without the experiment)."""
    mlc = mlflow_client(settings, read_only=True)
    exp = mlc.get_experiment_by_name(settings.mlflow_experiment)
    if exp is None:
        return []
    return list(
        mlc.search_runs(
            [exp.experiment_id],
            filter_string=_dag_run_filter(dag_run_id, **{TAG_STATUS: STATUS_LEARNED}),
            order_by=["attributes.start_time ASC"],
        )
    )


def gate_decision(settings: Settings, run_id: str) -> dict[str, Any]:
    """``version``, ``alias`` and gate ``reasons`` of the version registered for ``run_id`` ({} when none)."""
    version = registered_version(settings, run_id)
    if version is None:
        return {}
    mv = mlflow_client(settings, read_only=True).get_model_version(settings.registered_model, version)
    reasons = (mv.tags or {}).get("gate_reasons", "")
    return {
        "version": mv.version,
        "alias": "/".join(sorted(mv.aliases or [])) or "no alias",
        "reasons": [r for r in reasons.split("; ") if r],
    }


def accuracy_heatmap(task_ids: list[str], matrix: list[list[float | None]], out_path: Path) -> Path:
    """Render the accuracy matrix R[i][j] as an annotated heatmap PNG; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    data = np.array([[math.nan if v is None else float(v) for v in row] for row in matrix], dtype=float)
    size = max(3.0, 0.9 * len(task_ids) + 1.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(np.ma.masked_invalid(data), vmin=0.0, vmax=1.0, cmap="viridis")
    ax.set_xticks(range(len(task_ids)), labels=task_ids, rotation=45, ha="right")
    ax.set_yticks(range(data.shape[0]), labels=[f"after {t}" for t in task_ids[: data.shape[0]]])
    ax.set_xlabel("evaluated on task")
    ax.set_ylabel("trained through task")
    for i in range(data.shape[0]):
        for j in range(data.shape[1]):
            if not math.isnan(data[i, j]):
                color = "black" if data[i, j] > 0.6 else "white"
                ax.text(j, i, f"{data[i, j]:.2f}", ha="center", va="center", color=color, fontsize=9)
    ax.set_title("Accuracy matrix R[i][j]")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    out_path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path


def log_result(run_id: str, result: dict[str, Any], workdir: Path) -> None:
    """Log one learned task (metrics, matrix JSON + PNG, checkpoint) into an open MLflow run."""
    import mlflow

    task_ids = result["task_ids"]
    for epoch, loss in enumerate(result["epoch_losses"]):
        mlflow.log_metric("loss", float(loss), step=epoch, run_id=run_id)
    metrics: dict[str, float] = {}
    for tid, acc in result["accuracies"].items():
        metrics[f"acc.{tid}"] = float(acc)
    for name, values in (
        ("retention", result["retention"]),
        ("retention_cc", result["retention_chance_corrected"]),
    ):
        for tid, value in values.items():
            if finite(value) is not None:
                metrics[f"{name}.{tid}"] = float(value)
    for key, metric in (
        ("mean_retention", "mean_retention"),
        ("mean_retention_chance_corrected", "mean_retention_cc"),
        ("avg_acc", "avg_acc"),
        ("bwt", "bwt"),
        ("forgetting", "forgetting"),
        ("param_count", "param_count"),
        ("strategy_memory_bytes", "strategy_memory_bytes"),
        ("stored_exemplars", "stored_exemplars"),
        ("train_seconds", "train_seconds"),
    ):
        value = finite(result.get(key))
        if value is not None:
            metrics[metric] = value
    metrics["new_task_acc"] = float(result["accuracies"][result["task_id"]])
    lowest = min_retention(result)
    if lowest is not None:  # the gate's rule: every old task, beside the mean
        metrics["min_retention"] = float(lowest)
    mlflow.log_metrics(metrics, run_id=run_id)

    matrix_json = workdir / "acc_matrix.json"
    matrix_json.write_text(json.dumps({"task_ids": task_ids, "matrix": result["acc_matrix"]}, indent=2))
    mlflow.log_artifact(str(matrix_json), run_id=run_id)
    mlflow.log_artifact(
        str(accuracy_heatmap(task_ids, result["acc_matrix"], workdir / "acc_matrix.png")), run_id=run_id
    )
    mlflow.log_artifact(result["checkpoint_path"], artifact_path="checkpoint", run_id=run_id)
    mlflow.log_artifact(result["checkpoint_path"] + ".sha256", artifact_path="checkpoint", run_id=run_id)


def flat_params(model_config: dict[str, Any], train_config: dict[str, Any]) -> dict[str, str]:
    """The resolved configuration as MLflow params (`model.*`, `train.*`)."""
    params = {f"model.{k}": str(v) for k, v in model_config.items()}
    params.update({f"train.{k}": str(v) for k, v in train_config.items()})
    return params


def registered_version(settings: Settings, run_id: str) -> str | None:
    """The model version registered for a learned run, if any: registration is idempotent by run."""
    found = mlflow_client(settings).search_model_versions(
        f"name = '{settings.registered_model}' and run_id = '{run_id}'"
    )
    return str(min(int(mv.version) for mv in found)) if found else None


def register_version(settings: Settings, run_id: str, result: dict[str, Any]) -> str:
    """Log the models-from-code pyfunc for the run's checkpoint and register it; returns the version."""
    import mlflow
    import numpy as np
    from mlflow.models.signature import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema, TensorSpec

    from model.inference import export_serving_checkpoint

    mlflow_client(settings)
    n_features = 64
    # "Any" columns: MLflow refuses int64 (the task CSVs' pixels) against "double", floats against "long";
    # the pyfunc checks the values itself (numbers 0..16, include/ops/pyfunc_model.py)
    signature = ModelSignature(
        inputs=Schema([ColSpec(AnyType(), f"f{i}") for i in range(n_features)]),
        outputs=Schema([TensorSpec(np.dtype("float32"), (-1, -1))]),
    )
    with mlflow.start_run(run_id=run_id), tempfile.TemporaryDirectory() as tmp:
        # the served artifact holds the model only: strategy memory (exemplars, Gram matrices) stays behind
        served = Path(tmp) / Path(result["checkpoint_path"]).name
        export_serving_checkpoint(Path(result["checkpoint_path"]), served)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=str(PYFUNC_CODE),
            artifacts={"checkpoint": str(served), "checkpoint_sha256": str(served) + ".sha256"},
            code_paths=[str(PROJECT_ROOT / "model")],
            signature=signature,
            pip_requirements=["torch==2.13.0", "numpy", "pandas", "mlflow==3.17.2"],
        )
    mv = mlflow.register_model(
        info.model_uri,
        settings.registered_model,
        tags={
            "checkpoint_path": result["checkpoint_path"],
            "checkpoint_sha256": result["checkpoint_sha256"],
            "task_id": result["task_id"],
            "mean_retention": str(result.get("mean_retention")),
            "min_retention": str(min_retention(result)),
            "new_task_acc": str(result["accuracies"][result["task_id"]]),
            "run_id": run_id,
        },
    )
    return str(mv.version)


def old_task_retention(result: dict[str, Any]) -> dict[str, float]:
    """Retention R[T][j] / R[j][j] of each old task j (every task but the newest), from the accuracy matrix."""
    from model.metrics import retention

    task_ids, matrix = list(result.get("task_ids") or []), result.get("acc_matrix")
    if len(task_ids) < 2 or not matrix:
        return {}
    return dict(zip(task_ids[:-1], retention(matrix)[:-1], strict=True))


def min_retention(result: dict[str, Any]) -> float | None:
    """The lowest retention over old tasks (None before the second task)."""
    per_task = old_task_retention(result)
    return min(per_task.values()) if per_task else None


def gate(result: dict[str, Any], retention_threshold: float, accuracy_floor: float) -> tuple[bool, list[str]]:
    """Promotion rule: new-task accuracy >= floor, and (after the first task) retention >= threshold on EVERY
    old task (the minimum), not only on average; the mean is checked too (runs without a matrix have only it)."""
    reasons: list[str] = []
    new_acc = float(result["accuracies"][result["task_id"]])
    if new_acc < accuracy_floor:
        reasons.append(f"new task {result['task_id']} accuracy {new_acc:.4f} < floor {accuracy_floor}")
    if len(result["task_ids"]) > 1:
        retention = finite(result.get("mean_retention"))
        if retention is None or retention < retention_threshold:
            reasons.append(f"mean retention {retention} < threshold {retention_threshold}")
        low = {t: r for t, r in old_task_retention(result).items() if r < retention_threshold}
        if low:
            named = ", ".join(f"{t} {r:.4f}" for t, r in sorted(low.items(), key=lambda kv: kv[1]))
            reasons.append(
                f"min retention {min(low.values()):.4f} < threshold {retention_threshold} ({named})"
            )
    return (not reasons, reasons)


def apply_gate(
    settings: Settings,
    version: str,
    result: dict[str, Any],
    retention_threshold: float,
    accuracy_floor: float,
) -> GateDecision:
    """Move `champion` to the version when it passes the gate, else mark it `challenger`."""
    mlc = mlflow_client(settings)
    passed, reasons = gate(result, retention_threshold, accuracy_floor)
    # CT_PROMOTION_APPROVAL=always: a passing version waits as challenger for a human (include/ops/approval.py)
    held = passed and settings.promotion_approval == "always"
    alias = CHAMPION if passed and not held else CHALLENGER
    from include.ops import alias_history  # every alias move is recorded (include/ops/alias_history.py)

    before = alias_history.current_alias(mlc, settings.registered_model, alias)
    mlc.set_registered_model_alias(settings.registered_model, alias, version)
    mlc.set_model_version_tag(settings.registered_model, version, "gate", "passed" if passed else "failed")
    if reasons:
        mlc.set_model_version_tag(settings.registered_model, version, "gate_reasons", "; ".join(reasons))
    # one history entry per move (a retry re-gating the same version adds none); a champion also writes the
    # serving fallback's local record (include/ops/champion_record.py). Written after the version's tags: the
    # history tag it appends is what tells cached readers (include/ops/cl_state.py) the gate is complete
    alias_history.record_gate_move(settings, alias, before, str(version), result, reasons, held=held)
    log.info("gate for %s v%s: %s %s", result["task_id"], version, alias, reasons)
    from include.ops.run_report import learned_fields

    return GateDecision(
        task_id=result["task_id"],
        version=version,
        passed=passed,
        alias=alias,
        reasons=reasons,
        mlflow_run_id=result.get("mlflow_run_id"),
        mean_retention=finite(result.get("mean_retention")),
        **learned_fields(result),
    )


def set_version_tags(settings: Settings, version: str, tags: dict[str, str]) -> None:
    """Set tags on one model version of ``settings.registered_model`` (values as strings)."""
    mlc = mlflow_client(settings)
    for key, value in tags.items():
        mlc.set_model_version_tag(settings.registered_model, str(version), key, str(value))


def forget_store_connections(uri: str) -> None:
    """Dispose the SQLAlchemy engines MLflow caches per database URI, so the next client in this process opens
    the file now at that path (after a restore swapped it) instead of reading the replaced one."""
    from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore as RegistryStore
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore as TrackingStore

    for store in (TrackingStore, RegistryStore):
        engine = store._engine_map.pop(uri, None)
        if engine is not None:
            engine.dispose()
