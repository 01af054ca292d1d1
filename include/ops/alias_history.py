"""The alias history: an append-only, sequence-numbered record of every move of a registered-model alias.

One entry per move (a gate promotion, a challenger, a rollback, a restore), never rewritten: a correction is
a new entry. Stored with the registry, as registered-model tags ``ct.alias_history.<seq:06d>`` = JSON, so it
lives in the MLflow store, is in every backup of it and survives a restore; mirrored to
``<state_dir>/alias_history.jsonl`` (rewritten atomically from the registry after each append) for readers
without the registry. A champion move also writes the local champion record (``include.ops.champion_record``),
which is the head of this history: the serving fallback.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from include.ops.settings import Settings
from include.ops.tracking import CHAMPION, TAG_DAG_ID, TAG_DAG_RUN_ID, finite, mlflow_client
from model.fsio import atomic_write_text, file_lock

log = logging.getLogger(__name__)

TAG_PREFIX = "ct.alias_history."
MIRROR_FILE = "alias_history.jsonl"
LOCK_FILE = "alias_history.lock"
# MLflow's SQL registry stores a registered-model tag value in a String(5000) column
MAX_TAG_VALUE = 5000
KINDS = ("promotion", "challenger", "rollback", "restore", "approval")


@dataclass(frozen=True)
class AliasMove:
    """One move of ``alias`` from ``from_version`` to ``to_version`` (None: unset), and why."""

    seq: int
    time: float  # unix seconds
    alias: str
    from_version: str | None
    to_version: str | None
    kind: str  # one of KINDS
    reason: str
    dag_id: str | None = None
    dag_run_id: str | None = None
    metrics: dict[str, float] = field(default_factory=dict)
    approver: str | None = None
    checkpoint_sha256: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (JSON, XCom)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AliasMove:
        """Parse one stored entry; ValueError for a malformed one."""
        try:
            return cls(
                seq=int(data["seq"]),
                time=float(data["time"]),
                alias=str(data["alias"]),
                from_version=None if data.get("from_version") is None else str(data["from_version"]),
                to_version=None if data.get("to_version") is None else str(data["to_version"]),
                kind=str(data["kind"]),
                reason=str(data.get("reason", "")),
                dag_id=data.get("dag_id"),
                dag_run_id=data.get("dag_run_id"),
                metrics={str(k): float(v) for k, v in (data.get("metrics") or {}).items()},
                approver=data.get("approver"),
                checkpoint_sha256=data.get("checkpoint_sha256"),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"not an alias-history entry ({exc!r}): {data!r:.200}") from exc


def tag_key(seq: int) -> str:
    """The registered-model tag that holds entry ``seq``."""
    return f"{TAG_PREFIX}{seq:06d}"


def mirror_path(settings: Settings) -> Path:
    """The local mirror: ``<state_dir>/alias_history.jsonl``."""
    return settings.state_dir / MIRROR_FILE


def encode(entry: AliasMove) -> str:
    """The entry as compact JSON of at most ``MAX_TAG_VALUE`` characters (metrics, then reason, cut to fit)."""
    data = entry.to_dict()
    text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_TAG_VALUE:
        data["metrics"] = {}
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    if len(text) > MAX_TAG_VALUE:
        data["reason"] = (
            data["reason"][: max(0, len(data["reason"]) - (len(text) - MAX_TAG_VALUE) - 3)] + "..."
        )
        text = json.dumps(data, sort_keys=True, separators=(",", ":"))
    return text


def parse_tags(tags: dict[str, str]) -> list[AliasMove]:
    """The history held in a registered model's tags, by seq; a garbled entry is skipped with a warning."""
    entries = []
    for key, value in tags.items():
        if not key.startswith(TAG_PREFIX):
            continue
        try:
            entries.append(AliasMove.from_dict(json.loads(value)))
        except (ValueError, TypeError) as exc:
            log.warning("alias history: tag %s skipped: %s", key, exc)
    return sorted(entries, key=lambda e: e.seq)


def read_history(settings: Settings, client: Any | None = None) -> list[AliasMove]:
    """Every alias move of ``settings.registered_model``, oldest first, from the registry ([] before any)."""
    client = client or mlflow_client(settings, read_only=True)
    try:
        model = client.get_registered_model(settings.registered_model)
    except Exception as exc:  # no registered model yet
        if (
            "RESOURCE_DOES_NOT_EXIST" in str(getattr(exc, "error_code", ""))
            or "not found" in str(exc).lower()
        ):
            return []
        raise
    return parse_tags(dict(model.tags or {}))


def read_mirror(settings: Settings) -> list[AliasMove]:
    """The local mirror's entries (for readers without the registry); [] when there is none."""
    path = mirror_path(settings)
    if not path.is_file():
        return []
    entries = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                entries.append(AliasMove.from_dict(json.loads(line)))
            except (ValueError, TypeError) as exc:
                log.warning("%s line %d skipped: %s", path, n, exc)
    return entries


def write_mirror(settings: Settings, entries: list[AliasMove]) -> Path:
    """Replace the local mirror atomically with ``entries`` (as read from the registry)."""
    path = mirror_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, "".join(json.dumps(e.to_dict(), sort_keys=True) + "\n" for e in entries))
    return path


def current_alias(client: Any, model_name: str, alias: str) -> str | None:
    """The version ``alias`` points at now, None when unset."""
    try:
        return str(client.get_model_version_by_alias(model_name, alias).version)
    except Exception:  # alias (or model) not set
        return None


def append_move(
    settings: Settings,
    alias: str,
    from_version: str | None,
    to_version: str | None,
    kind: str,
    reason: str,
    *,
    dag_id: str | None = None,
    dag_run_id: str | None = None,
    metrics: dict[str, Any] | None = None,
    approver: str | None = None,
    checkpoint_sha256: str | None = None,
) -> AliasMove:
    """Append one entry (next seq) to the registry's history and refresh the mirror; returns the entry.

    Appenders on one host are serialised by ``<var_dir>/alias_history.lock``; a tag already holding the
    chosen seq is never overwritten (the next free seq is taken)."""
    if kind not in KINDS:
        raise ValueError(f"alias-history kind must be one of {KINDS}, got {kind!r}")
    mlc = mlflow_client(settings)
    name = settings.registered_model
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    clean = {k: v for k, v in ((str(k), finite(v)) for k, v in (metrics or {}).items()) if v is not None}
    with file_lock(settings.var_dir / LOCK_FILE, timeout=60):
        tags = dict(mlc.get_registered_model(name).tags or {})
        seq = 1 + max((e.seq for e in parse_tags(tags)), default=0)
        while tag_key(seq) in tags:  # a garbled entry still holds its seq
            seq += 1
        entry = AliasMove(
            seq, time.time(), alias, from_version, to_version, kind, reason,
            dag_id, dag_run_id, clean, approver, checkpoint_sha256,
        )  # fmt: skip
        mlc.set_registered_model_tag(name, tag_key(seq), encode(entry))
        tags[tag_key(seq)] = encode(entry)
        write_mirror(settings, parse_tags(tags))
    log.info("alias history #%d: %s %s -> %s (%s) %s", seq, alias, from_version, to_version, kind, reason)
    return entry


def run_identity(settings: Settings, run_id: str | None) -> tuple[str | None, str | None]:
    """``(dag_id, dag_run_id)`` recorded on an MLflow run, (None, None) when unknown."""
    if not run_id:
        return None, None
    try:
        tags = mlflow_client(settings, read_only=True).get_run(run_id).data.tags
    except Exception:  # run deleted or store unreadable: the move is still recorded
        return None, None
    return tags.get(TAG_DAG_ID), tags.get(TAG_DAG_RUN_ID)


def record_gate_move(
    settings: Settings,
    alias: str,
    from_version: str | None,
    version: str,
    result: dict[str, Any],
    reasons: list[str],
    held: bool = False,
) -> AliasMove | None:
    """Record a gate's alias move (``champion``: promotion, else challenger) and, for a champion, the local
    champion record (its ``history_seq`` names the entry). No move (a retry re-gating the alias's version):
    no entry, the champion record rewritten from the entry that made it champion; None. ``held``: the gate
    passed but the version waits for an approval as challenger (``CT_PROMOTION_APPROVAL=always``)."""
    passed = alias == CHAMPION
    if from_version == version:
        history = [e for e in read_history(settings) if e.alias == alias]
        if not history or history[-1].to_version != version:
            # the alias already points here but no entry says so: an earlier try moved it and died before its
            # entry was written; record that move now, from the version the history last gave the alias
            from_version = history[-1].to_version if history else None
            return _record_new_move(settings, alias, from_version, version, result, reasons, held)
        if passed:
            made = [e for e in history if e.to_version == version]
            from include.ops.champion_record import write_champion_record

            write_champion_record(
                settings, version, result["checkpoint_path"], result["checkpoint_sha256"], result.get("task_id"),
                history_seq=made[-1].seq if made else None,
            )  # fmt: skip
        return None
    return _record_new_move(settings, alias, from_version, version, result, reasons, held)


def _record_new_move(
    settings: Settings,
    alias: str,
    from_version: str | None,
    version: str,
    result: dict[str, Any],
    reasons: list[str],
    held: bool,
) -> AliasMove:
    passed = alias == CHAMPION
    dag_id, dag_run_id = run_identity(settings, result.get("mlflow_run_id"))
    metrics = {
        "mean_retention": result.get("mean_retention"),
        "avg_acc": result.get("avg_acc"),
        "new_task_acc": (result.get("accuracies") or {}).get(result.get("task_id")),
    }
    task = result.get("task_id")
    if held:
        reason = f"gate passed for {task}, held for approval"
    else:
        reason = f"gate passed for {task}" if passed else "gate failed: " + "; ".join(reasons)
    entry = append_move(
        settings, alias, from_version, version, "promotion" if passed else "challenger", reason,
        dag_id=dag_id, dag_run_id=dag_run_id, metrics=metrics, checkpoint_sha256=result.get("checkpoint_sha256"),
    )  # fmt: skip
    if passed:
        write_champion_from(settings, entry, result["checkpoint_path"], result.get("task_id"))
    return entry


def write_champion_from(
    settings: Settings, entry: AliasMove, checkpoint_path: str | Path, task_id: str | None
):
    """Write the local champion record for the champion move ``entry`` (the history's head)."""
    from include.ops.champion_record import write_champion_record

    return write_champion_record(
        settings, str(entry.to_version), checkpoint_path, str(entry.checkpoint_sha256), task_id,
        history_seq=entry.seq,
    )  # fmt: skip


def record_restore(settings: Settings, backup_id: str, previous: dict[str, str | None]) -> list[AliasMove]:
    """After a restore: one ``restore`` entry per alias the restored registry holds (the history before it is
    the backup's, kept as it was); ``previous`` maps alias -> version before the restore."""
    mlc = mlflow_client(settings)
    out = []
    for alias in sorted({*previous, CHAMPION}):
        now = current_alias(mlc, settings.registered_model, alias)
        if now is None and previous.get(alias) is None:
            continue
        out.append(
            append_move(settings, alias, previous.get(alias), now, "restore", f"restored backup {backup_id}")
        )
    return out
