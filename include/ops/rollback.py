"""Model rollback: move ``champion`` back to the previous champion of the alias history, or to a named version
that passed the gate or was approved; the checkpoint's sha256 is verified first, the move is recorded in the
history (and the local champion record), and the serving app is told to reload.

The serving app follows ``champion`` by itself (its poll, ``CT_SERVING_CHAMPION_POLL_S``), exactly as after a
promotion; :func:`reload_serving` only makes it immediate through ``POST /api/model/reload``.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from include.ops import alias_history
from include.ops.errors import Refusal
from include.ops.settings import Settings
from include.ops.tracking import CHAMPION, finite, mlflow_client, sqlite_store_missing

log = logging.getLogger(__name__)

GATE_TAG = "gate"
APPROVAL_TAG = "approval"  # "approved" when an operator approved a version the gate failed (issue 16 item 1)


class RollbackRefused(Refusal):
    """The rollback can never succeed as asked (no earlier champion, version not eligible, checksum wrong)."""


@dataclass(frozen=True)
class RollbackResult:
    """What a rollback did: the alias move and the history entry recording it."""

    from_version: str | None
    to_version: str
    checkpoint_path: str
    checkpoint_sha256: str
    history_seq: int
    reload: str

    def to_dict(self) -> dict[str, Any]:
        """Plain-dict form (XCom, CLI)."""
        return asdict(self)


def previous_champion(entries: list[alias_history.AliasMove], current: str | None) -> str | None:
    """The champion before ``current`` in the history: the newest earlier champion that was never rolled back
    from (a rollback rejects the version it leaves), None when there is none."""
    champion = [e for e in entries if e.alias == CHAMPION]
    rejected = {e.from_version for e in champion if e.kind == "rollback" and e.from_version}
    for entry in reversed(champion):
        version = entry.to_version
        if version and version != current and version not in rejected:
            return version
    return None


def eligible(tags: dict[str, str], version: str, entries: list[alias_history.AliasMove]) -> str | None:
    """Why ``version`` may be champion (gate passed, approved, or champion before), None when it may not."""
    if tags.get(GATE_TAG) == "passed":
        return "gate passed"
    if tags.get(APPROVAL_TAG) == "approved":
        return "approved"
    if any(e.alias == CHAMPION and e.to_version == version and e.kind != "restore" for e in entries):
        return "champion before"
    return None


def verify_checkpoint(version: str, tags: dict[str, str]) -> tuple[Path, str]:
    """The version's checkpoint and sha256 after checking the file against its ``checkpoint_sha256`` tag."""
    from model.fsio import sha256_file

    path, expected = tags.get("checkpoint_path"), tags.get("checkpoint_sha256")
    if not path or not expected:
        raise RollbackRefused(f"version {version} has no checkpoint_path/checkpoint_sha256 tags")
    file = Path(path)
    if not file.is_file():
        raise RollbackRefused(f"version {version}: checkpoint {file.name} does not exist (restore a backup)")
    actual = sha256_file(file)
    if actual != expected:
        raise RollbackRefused(
            f"version {version}: checkpoint {file.name} sha256 {actual[:12]} != registry tag {expected[:12]}"
        )
    return file, actual


def rollback(
    settings: Settings,
    version: int | str | None = None,
    reason: str = "",
    *,
    dag_id: str | None = None,
    dag_run_id: str | None = None,
    approver: str | None = None,
    reload: bool = True,
) -> RollbackResult:
    """Move ``champion`` to ``version`` (None: the previous champion of the history); RollbackRefused naming
    why when there is no such version, it never passed the gate nor was approved, or its checkpoint is bad.

    Refused while disaster recovery holds the maintenance lock; holds the training lock (registration and
    the gate hold it too), so a rollback and a promotion never interleave."""
    from include.ops.lock import assert_not_locked
    from include.ops.training_recovery import training_lock_path
    from model.fsio import file_lock

    if sqlite_store_missing(settings.mlflow_tracking_uri):
        raise RollbackRefused(f"no MLflow store at {settings.mlflow_tracking_uri}: nothing was ever promoted")
    assert_not_locked("model rollback", settings.lock_file)
    with file_lock(training_lock_path(settings), settings.training_lock_timeout_s):
        result = _move(settings, version, reason, dag_id, dag_run_id, approver)
    reloaded = reload_serving(settings) if reload else "not asked"
    log.info("serving after the rollback to v%s: %s", result.to_version, reloaded)
    return RollbackResult(**{**result.to_dict(), "reload": reloaded})


def _move(
    settings: Settings,
    version: int | str | None,
    reason: str,
    dag_id: str | None,
    dag_run_id: str | None,
    approver: str | None,
) -> RollbackResult:
    """The checked alias move, its history entry and the champion record (under the training lock)."""
    mlc = mlflow_client(settings)
    name = settings.registered_model
    entries = alias_history.read_history(settings, mlc)
    current = alias_history.current_alias(mlc, name, CHAMPION)
    if version is None:
        target = previous_champion(entries, current)
        if target is None:
            raise RollbackRefused(
                f"no earlier champion of {name!r} in the alias history (champion is {f'v{current}' if current else 'unset'}); "
                "name a version: make rollback-model VERSION=<n>"
            )
    else:
        target = str(version).strip()
        if not target.isdigit():
            raise RollbackRefused(f"version must be a positive integer, got {version!r}")
    if target == current:
        raise RollbackRefused(f"version {target} is already {CHAMPION} of {name!r}")
    try:
        mv = mlc.get_model_version(name, target)
    except Exception as exc:
        raise RollbackRefused(f"{name!r} has no version {target}") from exc
    tags = dict(mv.tags or {})
    why = eligible(tags, target, entries)
    if why is None:
        raise RollbackRefused(
            f"version {target} of {name!r} never passed the gate (gate={tags.get(GATE_TAG)!r}) and was not "
            "approved: it cannot be champion"
        )
    path, sha = verify_checkpoint(target, tags)
    mlc.set_registered_model_alias(name, CHAMPION, target)
    text = reason.strip() or "rollback"
    entry = alias_history.append_move(
        settings, CHAMPION, current, target, "rollback", f"{text} ({why})",
        dag_id=dag_id, dag_run_id=dag_run_id, approver=approver, checkpoint_sha256=sha,
        metrics={"mean_retention": finite(tags.get("mean_retention")), "new_task_acc": finite(tags.get("new_task_acc"))},
    )  # fmt: skip
    alias_history.write_champion_from(settings, entry, path, tags.get("task_id"))
    log.info("rolled champion back v%s -> v%s (history #%d)", current, target, entry.seq)
    return RollbackResult(current, target, str(path), sha, entry.seq, "")


def reload_serving(settings: Settings, client: Any | None = None) -> str:
    """Ask the serving app (``Settings.app_url``) to reload the champion now; what happened (never raises).

    Without an answer the app still follows the alias on its next poll, as after a promotion."""
    import httpx

    token = settings.serving.api_token
    headers = {"Authorization": f"Bearer {token.get_secret_value()}"} if token else {}
    url = settings.app_url.rstrip("/") + "/api/model/reload"
    try:
        resp = (client or httpx).post(url, headers=headers, timeout=30.0)
    except httpx.HTTPError as exc:
        return f"app not reached ({type(exc).__name__}); it follows champion on its next poll"
    if resp.status_code != 200:
        return f"reload answered HTTP {resp.status_code}; the app follows champion on its next poll"
    return f"reloaded v{(resp.json().get('model') or {}).get('version')}"


def main(argv: list[str] | None = None) -> int:
    """``python -m include.ops.rollback [--version N] [--reason TEXT]`` (``make rollback-model``): 0 moved,
    2 refused (the reason printed, nothing changed)."""
    import argparse
    import json
    import sys

    from include.ops.lock import MaintenanceLocked
    from include.ops.settings import get_settings

    parser = argparse.ArgumentParser(
        prog="python -m include.ops.rollback", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--version", default=None, help="version to make champion (default: the previous one)"
    )
    parser.add_argument("--reason", default="make rollback-model", help="why (recorded in the alias history)")
    args = parser.parse_args(argv)
    version = args.version.strip() if args.version and args.version.strip() else None
    try:
        done = rollback(get_settings(), version, args.reason)
    except (Refusal, MaintenanceLocked) as exc:
        print(f"rollback refused: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(done.to_dict(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
