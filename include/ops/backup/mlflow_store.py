"""MLflow side of backups: dump/restore the backend store (SQLite online backup, pg_dump) and read the registry.

SQLite is copied with ``sqlite3.Connection.backup`` (a consistent snapshot even while MLflow writes);
PostgreSQL with ``pg_dump --format=custom`` and restored with ``pg_restore --clean --single-transaction``
(runbook "Database Backup"). Passwords go to the tools through ``PGPASSWORD``, never on a command line or in a log.
"""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from include.ops.backup.layout import BackupError
from include.ops.settings import Settings
from model.fsio import fsync_dir

log = logging.getLogger(__name__)

SQLITE_DUMP = "mlflow/mlflow.db"
PG_DUMP = "mlflow/mlflow.pgdump"
ARTIFACTS = "mlflow/artifacts"
ALIASES = ("champion", "challenger")
PG_TIMEOUT_S = 600


def backend_kind(tracking_uri: str) -> str:
    """``sqlite``, ``postgresql`` or ``other`` (file stores, remote servers: not backed up here)."""
    scheme = tracking_uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme == "sqlite":
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    return "other"


def sqlite_path(tracking_uri: str) -> Path:
    """File of a ``sqlite:///path`` tracking URI (``sqlite:////abs`` or ``sqlite:///rel``)."""
    if not tracking_uri.startswith("sqlite:///"):
        raise ValueError(f"not a SQLite tracking URI: {redact_uri(tracking_uri)}")
    return Path(tracking_uri.removeprefix("sqlite:///")).expanduser()


def artifacts_dir(settings: Settings) -> Path:
    """Local artifact root: ``settings.mlflow_artifacts_dir``, else ``artifacts/`` beside the SQLite store."""
    if settings.mlflow_artifacts_dir:
        return settings.mlflow_artifacts_dir
    if backend_kind(settings.mlflow_tracking_uri) == "sqlite":
        return sqlite_path(settings.mlflow_tracking_uri).resolve().parent / "artifacts"
    return settings.var_dir / "mlflow" / "artifacts"


def redact_uri(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (safe to log)."""
    try:
        parts = urlsplit(uri)
    except ValueError:
        return "<unparsable uri>"
    if parts.password is None:
        return uri
    netloc = parts.netloc.rsplit("@", 1)
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{netloc[-1]}", parts.path, parts.query, parts.fragment))


def _pg_target(uri: str) -> tuple[str, dict[str, str]]:
    """libpq URI without password (``postgresql+driver`` normalised) and the env that carries the password."""
    parts = urlsplit(uri)
    scheme = "postgresql"
    env = dict(os.environ)
    host = parts.hostname or ""
    netloc = host if ":" not in host else f"[{host}]"
    if parts.port:
        netloc = f"{netloc}:{parts.port}"
    if parts.username:
        netloc = f"{parts.username}@{netloc}"
    if parts.password is not None:
        env["PGPASSWORD"] = parts.password
    return urlunsplit((scheme, netloc, parts.path, parts.query, "")), env


def _run_pg(args: list[str], env: dict[str, str], what: str) -> None:
    try:
        proc = subprocess.run(
            args, env=env, capture_output=True, text=True, timeout=PG_TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise BackupError(f"{what}: {args[0]} is not installed (PostgreSQL client tools are needed)") from exc
    if proc.returncode != 0:
        raise BackupError(f"{what} failed (exit {proc.returncode}): {proc.stderr.strip()[-2000:]}")


def dump_sqlite(src: Path, dst: Path) -> dict[str, int]:
    """Consistent copy of a live SQLite store (online backup API) with secrets scrubbed; integrity-checked.

    MLflow keeps gateway secrets (``secrets``) and webhook signing secrets in its store; they are deleted from
    the copy and the file is vacuumed, so no secret byte reaches a backup. Returns the scrubbed row counts.
    """
    if not src.is_file():
        raise BackupError(f"MLflow SQLite store {src} does not exist")
    dst.parent.mkdir(parents=True, exist_ok=True)
    dst.unlink(missing_ok=True)
    source = sqlite3.connect(f"file:{src}?mode=ro", uri=True, timeout=60)
    target = sqlite3.connect(dst)
    try:
        # a private new file: no journal, no per-write syncs; the caller fsyncs it with the rest of the backup
        target.execute("PRAGMA journal_mode = OFF")
        target.execute("PRAGMA synchronous = OFF")
        source.backup(target)
        scrubbed = _scrub_secrets(target)
        check = target.execute("PRAGMA integrity_check").fetchone()[0]
        if check != "ok":
            raise BackupError(f"SQLite backup of {src} failed its integrity check: {check}")
    finally:
        target.close()
        source.close()
    return scrubbed


def _tables(conn: sqlite3.Connection, schema: str = "main") -> set[str]:
    return {row[0] for row in conn.execute(f"SELECT name FROM {schema}.sqlite_master WHERE type='table'")}  # noqa: S608


def _columns(conn: sqlite3.Connection, table: str, schema: str = "main") -> list[str]:
    return [row[1] for row in conn.execute(f"PRAGMA {schema}.table_info({table})")]


def _scrub_secrets(conn: sqlite3.Connection) -> dict[str, int]:
    """Delete MLflow's stored secrets from a copy of the store; vacuum the freed pages away if any were found."""
    tables = _tables(conn)
    out = {}
    has_webhook_secret = "webhooks" in tables and "secret" in _columns(conn, "webhooks")
    if "secrets" in tables:
        out["secrets"] = conn.execute("SELECT count(*) FROM secrets").fetchone()[0]
    if has_webhook_secret:
        out["webhooks.secret"] = conn.execute(
            "SELECT count(*) FROM webhooks WHERE secret IS NOT NULL"
        ).fetchone()[0]
    if any(out.values()):
        conn.execute("PRAGMA secure_delete = ON")
        if out.get("secrets"):
            conn.execute("DELETE FROM secrets")
        if out.get("webhooks.secret"):
            conn.execute("UPDATE webhooks SET secret = NULL WHERE secret IS NOT NULL")
        conn.commit()
        conn.execute("VACUUM")  # deleted rows leave their bytes in free pages until the file is rebuilt
    return out


def carry_live_secrets(staged: Path, live: Path) -> dict[str, int]:
    """Copy the live store's secrets into a staged (restored) store: a restore never drops a live secret."""
    if not live.is_file():
        return {}
    conn = sqlite3.connect(staged)
    out = {}
    try:
        conn.execute("ATTACH DATABASE ? AS live", (f"file:{live}?mode=ro",))
        staged_tables, live_tables = _tables(conn), _tables(conn, "live")
        if "secrets" in staged_tables and "secrets" in live_tables:
            cols = [c for c in _columns(conn, "secrets", "live") if c in set(_columns(conn, "secrets"))]
            # column names come from the schema itself (PRAGMA table_info), not from any input
            names = ", ".join(f'"{c}"' for c in cols)
            query = f"INSERT OR REPLACE INTO main.secrets ({names}) SELECT {names} FROM live.secrets"  # noqa: S608
            cur = conn.execute(query)
            out["secrets"] = cur.rowcount
        if {"webhooks"} <= staged_tables & live_tables and "secret" in _columns(conn, "webhooks", "live"):
            cur = conn.execute(
                "UPDATE main.webhooks SET secret = (SELECT l.secret FROM live.webhooks l "
                "WHERE l.webhook_id = main.webhooks.webhook_id) "
                "WHERE webhook_id IN (SELECT webhook_id FROM live.webhooks WHERE secret IS NOT NULL)"
            )
            out["webhooks.secret"] = cur.rowcount
        conn.commit()
        conn.execute("DETACH DATABASE live")
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"could not carry live MLflow secrets from {live} into {staged}: {exc}") from exc
    finally:
        conn.close()
    return out


def dump_postgres(uri: str, dst: Path) -> None:
    """``pg_dump --format=custom`` of the MLflow database into ``dst``."""
    target, env = _pg_target(uri)
    dst.parent.mkdir(parents=True, exist_ok=True)
    log.info("pg_dump of %s", redact_uri(uri))
    _run_pg(
        ["pg_dump", "--format=custom", "--no-owner", "--no-privileges", f"--file={dst}", target],
        env,
        "pg_dump",
    )


def check_postgres_dump(dump: Path) -> int:
    """Read the dump's table of contents with ``pg_restore --list``; return the number of entries."""
    proc = subprocess.run(["pg_restore", "--list", str(dump)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise BackupError(f"PostgreSQL dump {dump} is unreadable: {proc.stderr.strip()[-1000:]}")
    return sum(1 for line in proc.stdout.splitlines() if line and not line.startswith(";"))


def restore_postgres(dump: Path, uri: str) -> None:
    """Replace the MLflow database's contents with ``dump`` in one transaction (``pg_restore --clean``)."""
    target, env = _pg_target(uri)
    log.info("pg_restore into %s", redact_uri(uri))
    args = ["pg_restore", "--clean", "--if-exists", "--no-owner", "--no-privileges", "--single-transaction"]
    _run_pg([*args, f"--dbname={target}", str(dump)], env, "pg_restore")


def sqlite_integrity(db: Path) -> None:
    """Raise BackupError unless ``PRAGMA integrity_check`` of ``db`` says ok."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        check = conn.execute("PRAGMA integrity_check").fetchone()[0]
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"MLflow SQLite store {db} is unreadable: {exc}") from exc
    finally:
        conn.close()
    if check != "ok":
        raise BackupError(f"MLflow SQLite store {db} failed its integrity check: {check}")


def install_sqlite(staged: Path, live: Path, keep_previous: Path | None) -> None:
    """Swap a staged SQLite file in for ``live`` (``os.replace``); stale -wal/-shm/-journal files move aside too."""
    sqlite_integrity(staged)
    live.parent.mkdir(parents=True, exist_ok=True)
    if live.exists() and keep_previous is not None:
        shutil.copy2(live, keep_previous)
    for suffix in ("-wal", "-shm", "-journal"):
        side = live.with_name(live.name + suffix)
        if side.exists():
            side.replace(side.with_name(side.name + ".pre-restore"))
    os.replace(staged, live)
    fsync_dir(live.parent)


def _empty_registry(settings: Settings, backend: str) -> dict[str, Any]:
    return {
        "backend": backend,
        "registered_model": settings.registered_model,
        "experiment": settings.mlflow_experiment,
        "run_ids": [],
        "checkpoint_runs": {},
        "versions": {},
        "aliases": {},
    }


def registry_from_sqlite(db: Path, settings: Settings) -> dict[str, Any]:
    """Runs, model versions (tags) and aliases read with plain SQL from a SQLite store (e.g. a backup's copy).

    Reading the dumped file keeps the manifest consistent with the dump, and plain SQL needs no MLflow import
    and cannot be fooled by a cached connection to a file that a restore has replaced.
    """
    snapshot = _empty_registry(settings, "sqlite")
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        tables = _tables(conn)
        if not {"experiments", "runs", "tags"} <= tables:
            snapshot["note"] = "MLflow store has no tracking tables"
            return snapshot
        exp = conn.execute(
            "SELECT experiment_id FROM experiments WHERE name = ?", (settings.mlflow_experiment,)
        ).fetchone()
        if exp is not None:
            rows = conn.execute(
                "SELECT run_uuid FROM runs WHERE experiment_id = ? ORDER BY start_time", (exp[0],)
            )
            snapshot["run_ids"] = [r[0] for r in rows]
            rows = conn.execute(
                "SELECT t.value, t.run_uuid FROM tags t JOIN runs r ON r.run_uuid = t.run_uuid "
                "WHERE r.experiment_id = ? AND t.key = 'ct.checkpoint_sha256'",
                (exp[0],),
            )
            for sha, run_id in rows:
                snapshot["checkpoint_runs"].setdefault(sha, []).append(run_id)
        if {"model_versions", "model_version_tags", "registered_model_aliases"} <= tables:
            name = settings.registered_model
            for version, run_id in conn.execute(
                "SELECT version, run_id FROM model_versions WHERE name = ?", (name,)
            ):
                snapshot["versions"][str(version)] = {"run_id": run_id, "tags": {}, "aliases": []}
            rows = conn.execute(
                "SELECT version, key, value FROM model_version_tags WHERE name = ? "
                "AND key IN ('checkpoint_path', 'checkpoint_sha256', 'task_id')",
                (name,),
            )
            for version, key, value in rows:
                snapshot["versions"].setdefault(str(version), {"run_id": None, "tags": {}, "aliases": []})
                snapshot["versions"][str(version)]["tags"][key] = value
            snapshot["aliases"] = aliases_from_sqlite(conn, name)
            for alias, info in snapshot["aliases"].items():
                snapshot["versions"].get(info["version"], {}).setdefault("aliases", []).append(alias)
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"MLflow SQLite store {db} is unreadable: {exc}") from exc
    finally:
        conn.close()
    return snapshot


def aliases_from_sqlite(db: Path | sqlite3.Connection, registered_model: str) -> dict[str, dict[str, Any]]:
    """``{alias: {version, checkpoint_path, checkpoint_sha256}}`` for champion/challenger of a SQLite store."""
    conn = db if isinstance(db, sqlite3.Connection) else sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        if "registered_model_aliases" not in _tables(conn):
            return {}
        out: dict[str, dict[str, Any]] = {}
        rows = conn.execute(
            "SELECT alias, version FROM registered_model_aliases WHERE name = ? AND alias IN (?, ?)",
            (registered_model, *ALIASES),
        ).fetchall()
        for alias, version in sorted(rows):
            tags = dict(
                conn.execute(
                    "SELECT key, value FROM model_version_tags WHERE name = ? AND version = ? "
                    "AND key IN ('checkpoint_path', 'checkpoint_sha256')",
                    (registered_model, version),
                ).fetchall()
            )
            out[alias] = {
                "version": str(version),
                "checkpoint_path": tags.get("checkpoint_path"),
                "checkpoint_sha256": tags.get("checkpoint_sha256"),
            }
        return out
    finally:
        if not isinstance(db, sqlite3.Connection):
            conn.close()


def registry_snapshot(settings: Settings, tracking_uri: str | None = None) -> dict[str, Any]:
    """Runs, registered versions (tags) and aliases through MlflowClient (PostgreSQL and other servers)."""
    uri = tracking_uri or settings.mlflow_tracking_uri
    snapshot = _empty_registry(settings, backend_kind(uri))
    from mlflow.exceptions import MlflowException

    from include.ops.tracking import mlflow_client

    client = mlflow_client(uri, read_only=True)
    exp = client.get_experiment_by_name(settings.mlflow_experiment)
    if exp is not None:
        token = None
        while True:
            page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
            for run in page:
                snapshot["run_ids"].append(run.info.run_id)
                sha = run.data.tags.get("ct.checkpoint_sha256")
                if sha:
                    snapshot["checkpoint_runs"].setdefault(sha, []).append(run.info.run_id)
            token = page.token
            if not token:
                break
    try:
        versions = client.search_model_versions(f"name = '{settings.registered_model}'")
    except MlflowException:
        versions = []
    keep = ("checkpoint_path", "checkpoint_sha256", "task_id")
    for mv in versions:
        snapshot["versions"][str(mv.version)] = {
            "run_id": mv.run_id,
            "tags": {k: v for k, v in (mv.tags or {}).items() if k in keep},
            "aliases": list(getattr(mv, "aliases", []) or []),
        }
    for alias in ALIASES:
        try:
            mv = client.get_model_version_by_alias(settings.registered_model, alias)
        except MlflowException:
            continue
        snapshot["aliases"][alias] = {
            "version": str(mv.version),
            "checkpoint_path": (mv.tags or {}).get("checkpoint_path"),
            "checkpoint_sha256": (mv.tags or {}).get("checkpoint_sha256"),
        }
    return snapshot


def live_aliases(settings: Settings) -> dict[str, dict[str, Any]]:
    """Aliases of the live MLflow store (SQLite read directly; other backends through MlflowClient)."""
    uri = settings.mlflow_tracking_uri
    if backend_kind(uri) == "sqlite":
        db = sqlite_path(uri)
        return aliases_from_sqlite(db, settings.registered_model) if db.is_file() else {}
    return registry_snapshot(settings)["aliases"]
