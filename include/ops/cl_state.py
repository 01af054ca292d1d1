"""Continual-learning state as plain JSON-ready dicts, read from MLflow only (no Airflow import).

The Airflow plugin view, its JSON API and the operator CLI all render what these functions return,
so the three always agree. MLflow names follow docs/conventions.md.

The state and the history are cached per process (one cache, :func:`cached_read`): a read first asks MLflow
for :func:`store_fingerprint` (three cheap calls: the experiment, its newest run, the registered model) and
reads everything again only when that changed: a new or finished run, a new version, an alias move.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from include.ops.alias_history import parse_tags
from include.ops.settings import Settings, get_settings
from include.ops.tracking import (
    CHALLENGER,
    CHAMPION,
    TAG_STATUS,
    TAG_TASK_ID,
    finite,
    learned_runs,
    mlflow_client,
    run_link,
    run_summary,
    sqlite_store_missing,
)

ALIASES = (CHAMPION, CHALLENGER)
ALIAS_MOVES_SHOWN = 20  # the state (plugin view) carries the newest moves; ``alias_moves`` returns all


def mlflow_ui_url() -> str:
    """Base URL of the MLflow UI for links: ``Settings.mlflow_ui_url`` (``CT_MLFLOW_UI_URL``)."""
    return get_settings().mlflow_ui_url.rstrip("/")


def model_version_link(ui_url: str, model_name: str, version: str) -> str:
    """MLflow UI address of a registered model version."""
    return f"{ui_url.rstrip('/')}/#/models/{quote(model_name, safe='')}/versions/{version}"


@contextlib.contextmanager
def env_defaults(**values: str) -> Iterator[None]:
    """Within the block, set the env vars the caller has not set; remove exactly those again on exit."""
    added = [name for name in values if name not in os.environ]
    for name in added:
        os.environ[name] = values[name]
    try:
        yield
    finally:
        for name in added:
            os.environ.pop(name, None)


def fail_fast_http(max_retries: int = 1, timeout_s: int = 10) -> contextlib.AbstractContextManager[None]:
    """Within the block, MLflow's HTTP client gives up quickly (its default retries last minutes)."""
    return env_defaults(
        MLFLOW_HTTP_REQUEST_MAX_RETRIES=str(max_retries), MLFLOW_HTTP_REQUEST_TIMEOUT=str(timeout_s)
    )


def read_acc_matrix(client: Any, run_id: str) -> dict[str, Any] | None:
    """The run's ``acc_matrix.json`` as ``{"task_ids", "matrix"}``, or None when absent or malformed."""
    # no tqdm bar from MLflow on the operator's terminal for a 1 KiB file
    with (
        tempfile.TemporaryDirectory(prefix="ct-accm-") as tmp,
        env_defaults(MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR="false"),
    ):
        try:
            local = client.download_artifacts(run_id, "acc_matrix.json", tmp)
            raw = json.loads(Path(local).read_text())
            task_ids = [str(t) for t in raw["task_ids"]]
            matrix = [[finite(v) for v in row] for row in raw["matrix"]]
        except Exception:  # missing artifact, unreadable store or wrong shape: the view shows "no matrix"
            return None
    if any(len(row) > len(task_ids) for row in matrix):
        return None
    return {"task_ids": task_ids, "matrix": matrix}


def _alias_info(
    client: Any, model_name: str, alias: str, experiment_id: str | None, ui_url: str
) -> dict | None:
    """Version, run and links of the registered version behind ``alias``; None when the alias is unset."""
    try:
        mv = client.get_model_version_by_alias(model_name, alias)
    except Exception:  # no such model or alias: nothing promoted yet
        return None
    run_id = mv.run_id or (mv.tags or {}).get("run_id")
    exp_id = experiment_id
    if run_id:
        with contextlib.suppress(Exception):  # run deleted from the store: link into the project experiment
            exp_id = client.get_run(run_id).info.experiment_id
    return {
        "alias": alias,
        "version": str(mv.version),
        "run_id": run_id,
        "task_id": (mv.tags or {}).get("task_id"),
        "gate": (mv.tags or {}).get("gate"),
        "gate_reasons": (mv.tags or {}).get("gate_reasons"),
        "mean_retention": finite((mv.tags or {}).get("mean_retention")),
        "run_url": run_link(ui_url, exp_id, run_id) if run_id and exp_id else None,
        "version_url": model_version_link(ui_url, model_name, str(mv.version)),
    }


def empty_state(experiment: str, model_name: str, tracking_uri: str, threshold: float) -> dict[str, Any]:
    """The state before anything was learned: same keys as ``continual_state``, nothing filled in."""
    return {
        "experiment": experiment,
        "experiment_id": None,
        "experiment_url": None,
        "registered_model": model_name,
        "tracking_uri": tracking_uri,
        "mlflow_ui_url": mlflow_ui_url(),
        "retention_threshold": threshold,
        "tasks_learned": 0,
        "task_ids": [],
        "latest_run": None,
        "acc_matrix": None,
        "retention": [],
        "mean_retention": None,
        "min_retention": None,  # the gate's rule (every old task); None for runs that predate the metric
        "below_threshold": [],
        "champion": None,
        "challenger": None,
        "alias_history": [],
    }


_CACHE: dict[tuple, tuple[tuple, Any]] = {}  # (reader, its arguments) -> (store fingerprint, value read)
_CACHE_LOCK = threading.Lock()


def store_fingerprint(client: Any, experiment: str, model_name: str) -> tuple:
    """What changes whenever the state could: the experiment, its newest run (id, status, end, ``ct.status``)
    and the registered model (last update, aliases, tag count: every alias move appends a history tag)."""
    exp = client.get_experiment_by_name(experiment)
    newest: tuple = ()
    if exp is not None:
        runs = client.search_runs([exp.experiment_id], order_by=["attributes.start_time DESC"], max_results=1)
        if runs:
            r = runs[0]
            newest = (r.info.run_id, r.info.status, r.info.end_time, r.data.tags.get(TAG_STATUS))
    try:
        rm = client.get_registered_model(model_name)
        model = (rm.last_updated_timestamp, tuple(sorted((rm.aliases or {}).items())), len(rm.tags or {}))
    except Exception:  # no registered model yet
        model = ()
    return (exp.experiment_id if exp is not None else None, newest, model)


def cached_read(key: tuple, client: Any, experiment: str, model_name: str, read: Callable[[], Any]) -> Any:
    """``read()``, or a copy of its last value for ``key`` while the store's fingerprint is unchanged.

    The fingerprint is taken before reading, so a run that lands meanwhile makes the next call read again."""
    fingerprint = store_fingerprint(client, experiment, model_name)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None and hit[0] == fingerprint:
        return copy.deepcopy(hit[1])
    value = read()
    with _CACHE_LOCK:
        _CACHE[key] = (fingerprint, value)
    return copy.deepcopy(value)


def clear_cache() -> None:
    """Forget every cached read (benchmarks and tests; a changed store is noticed by its fingerprint)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def continual_state(
    tracking_uri: str,
    experiment: str,
    model_name: str,
    ui_url: str | None = None,
    threshold: float | None = None,
) -> dict[str, Any]:
    """Tasks learned, latest acc matrix, retention per task vs ``threshold``, champion/challenger (JSON).

    ``threshold`` defaults to the settings' ``retention_threshold`` (``CT_RETENTION_THRESHOLD``).

    ``retention`` rows are ``{"task_id", "retention", "passed"}`` in stream order; ``passed`` is None when the
    run logged no retention for that task. Aliases are None until set. Never raises for an empty store.
    """
    if threshold is None:
        threshold = get_settings().retention_threshold
    ui = (ui_url or mlflow_ui_url()).rstrip("/")
    if sqlite_store_missing(tracking_uri):
        return {**empty_state(experiment, model_name, tracking_uri, threshold), "mlflow_ui_url": ui}
    client = mlflow_client(tracking_uri, read_only=True)
    key = ("state", tracking_uri, experiment, model_name, ui, threshold)
    return cached_read(
        key,
        client,
        experiment,
        model_name,
        lambda: _read_state(client, tracking_uri, experiment, model_name, ui, threshold),
    )


def _read_state(
    client: Any, tracking_uri: str, experiment: str, model_name: str, ui: str, threshold: float
) -> dict[str, Any]:
    """``continual_state`` read from MLflow (no cache)."""
    state = empty_state(experiment, model_name, tracking_uri, threshold)
    state["mlflow_ui_url"] = ui
    exp = client.get_experiment_by_name(experiment)
    exp_id = exp.experiment_id if exp is not None else None
    if exp_id is not None:
        state["experiment_id"] = exp_id
        state["experiment_url"] = f"{ui}/#/experiments/{exp_id}/runs"
        runs = learned_runs(client, exp_id)
        task_ids: list[str] = []
        for run in runs:
            tid = run.data.tags.get(TAG_TASK_ID)
            if tid and tid not in task_ids:
                task_ids.append(tid)
        state["tasks_learned"] = len(task_ids)
        state["task_ids"] = task_ids
        if runs:
            latest = runs[-1]
            state["latest_run"] = run_summary(latest, ui)
            state["acc_matrix"] = read_acc_matrix(client, latest.info.run_id)
            order = state["acc_matrix"]["task_ids"] if state["acc_matrix"] else task_ids
            metrics = latest.data.metrics
            extra = sorted(k.removeprefix("retention.") for k in metrics if k.startswith("retention."))
            for tid in [*order, *(t for t in extra if t not in order)]:
                value = finite(metrics.get(f"retention.{tid}"))
                state["retention"].append(
                    {
                        "task_id": tid,
                        "retention": value,
                        "passed": None if value is None else value >= threshold,
                    }
                )
            state["mean_retention"] = finite(metrics.get("mean_retention"))
            state["min_retention"] = finite(metrics.get("min_retention"))
            state["below_threshold"] = [r["task_id"] for r in state["retention"] if r["passed"] is False]
    for alias in ALIASES:
        state[alias] = _alias_info(client, model_name, alias, exp_id, ui)
    state["alias_history"] = _alias_moves(client, model_name, ui)[-ALIAS_MOVES_SHOWN:]
    return state


def _alias_moves(client: Any, model_name: str, ui_url: str) -> list[dict[str, Any]]:
    """The registry's alias history (``include.ops.alias_history``) as dicts with version links, oldest first."""
    try:
        tags = client.get_registered_model(model_name).tags or {}
    except Exception:  # no registered model yet
        return []
    rows = []
    for entry in parse_tags(dict(tags)):
        row = entry.to_dict()
        row["version_url"] = (
            model_version_link(ui_url, model_name, entry.to_version) if entry.to_version else None
        )
        rows.append(row)
    return rows


def alias_moves(tracking_uri: str, model_name: str, ui_url: str | None = None) -> list[dict[str, Any]]:
    """Every move of an alias of ``model_name``, oldest first, one dict per alias-history entry."""
    if sqlite_store_missing(tracking_uri):
        return []
    return _alias_moves(
        mlflow_client(tracking_uri, read_only=True), model_name, (ui_url or mlflow_ui_url()).rstrip("/")
    )


def learning_history(
    tracking_uri: str, experiment: str, model_name: str, ui_url: str | None = None
) -> list[dict]:
    """One row per learned run, oldest first, with its headline metrics, model version and aliases."""
    ui = (ui_url or mlflow_ui_url()).rstrip("/")
    if sqlite_store_missing(tracking_uri):
        return []
    client = mlflow_client(tracking_uri, read_only=True)
    key = ("history", tracking_uri, experiment, model_name, ui)
    return cached_read(
        key, client, experiment, model_name, lambda: _read_history(client, experiment, model_name, ui)
    )


def _read_history(client: Any, experiment: str, model_name: str, ui: str) -> list[dict]:
    """``learning_history`` read from MLflow (no cache)."""
    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        return []
    by_run: dict[str, dict[str, Any]] = {}
    try:
        versions = client.search_model_versions(f"name = '{model_name}'", max_results=10000)
        # search results carry no aliases; the registered model holds the alias -> version map
        alias_map = client.get_registered_model(model_name).aliases or {}
    except Exception:  # no registry entry yet
        versions, alias_map = [], {}
    for mv in versions:
        run_id = mv.run_id or (mv.tags or {}).get("run_id")
        if run_id:
            aliases = sorted(a for a, v in alias_map.items() if str(v) == str(mv.version))
            by_run[run_id] = {"version": str(mv.version), "aliases": aliases}
    rows = []
    for run in learned_runs(client, exp.experiment_id):
        row = run_summary(run, ui)
        row.update(by_run.get(run.info.run_id, {"version": None, "aliases": []}))
        rows.append(row)
    return rows


def state_from_settings(settings: Settings | None = None) -> dict[str, Any]:
    """``continual_state`` for the configured tracking URI, experiment, registered model and threshold."""
    settings = settings or get_settings()
    return continual_state(
        settings.mlflow_tracking_uri,
        settings.mlflow_experiment,
        settings.registered_model,
        threshold=settings.retention_threshold,
    )
