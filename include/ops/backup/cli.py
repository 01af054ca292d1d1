"""Command line for the runbook's backup scripts: ``python -m include.airflow_glue.backup_cli <command>``.

The same commands run Airflow-free as ``python -m include.ops.backup.cli`` (local backups only: S3 comes
from the Airflow ``s3_backup`` connection, which the glue entry point passes in as a store factory).

backup    backup_models.sh + backup_database.sh: checkpoints, MLflow store + artifacts, config, manifest
verify    re-read a backup and check every checksum
list      backups, complete or not
restore   restore_model.sh: verify, stage, swap in (``--dry-run`` shows the changes)
validate  the runbook's ``make test-validation``: restored files, aliases and accuracies match the backup
drill     disaster_recovery.sh against a scratch folder: RTO/RPO report, live state untouched
cleanup   cleanup.sh: keep-N checkpoints, GFS backups, logs older than 30 days (``--dry-run`` lists)
lock      show the maintenance lock; ``lock --release --force`` removes a stuck one

Exit status: 0 success, 1 a backup/restore check failed, 2 bad usage.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from typing import Any, TextIO

from include.ops.backup.catalog import describe_skipped
from include.ops.backup.layout import BACKUP_ID_RE, BackupError
from include.ops.backup.s3 import S3Store, StoreFactory
from include.ops.lock import MaintenanceLocked

log = logging.getLogger("include.ops.backup.cli")


class TerminalProgress:
    """Progress display: a redrawn bar on a terminal, a line per 25% otherwise (CI logs stay short)."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self._last_stage = ""
        self._last_pct = -1
        self._started = time.monotonic()

    def __call__(self, stage: str, done: int, total: int, done_bytes: int) -> None:
        """Render one progress update."""
        if stage != self._last_stage:
            self._last_stage, self._last_pct, self._started = stage, -1, time.monotonic()
        pct = 100 if total == 0 else int(100 * done / total)
        elapsed = time.monotonic() - self._started
        if self.tty:
            bar = "#" * (pct // 5) + "." * (20 - pct // 5)
            end = "\n" if done >= total else ""
            self.stream.write(
                f"\r{stage:<28} [{bar}] {done}/{total} files {done_bytes / 1e6:7.1f} MB {elapsed:5.1f}s{end}"
            )
            self.stream.flush()
        elif pct // 25 > self._last_pct // 25 or done >= total and self._last_pct < 100:
            self.stream.write(f"{stage}: {done}/{total} files, {done_bytes / 1e6:.1f} MB, {elapsed:.1f}s\n")
            self.stream.flush()
        self._last_pct = pct


def _backup_id_arg(value: str) -> str:
    if value != "latest" and not BACKUP_ID_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"invalid backup id {value!r}: expected YYYYMMDDTHHMMSSZ[-N] or 'latest'"
        )
    return value


def _store(args: argparse.Namespace, remote: str) -> S3Store | None:
    """The S3 store for ``--remote``/``--source``: ``off`` -> None, ``auto`` -> if configured, ``required``."""
    if remote == "off":
        return None
    store = args.store_factory() if args.store_factory is not None else None
    if store is None and remote == "required":
        raise BackupError(
            "S3 required but no s3_backup connection is configured (AIRFLOW_CONN_S3_BACKUP; "
            "run through `python -m include.airflow_glue.backup_cli`, as `make` does)"
        )
    return store


def _print(result: Any, as_json: bool, lines: list[str]) -> None:
    if as_json:
        print(json.dumps(result, indent=2, default=str))
    else:
        print("\n".join(lines))


def cmd_backup(args: argparse.Namespace) -> int:
    """Create (and by default verify) one backup."""
    from include.ops.backup.catalog import verify_backup
    from include.ops.backup.create import create_backup

    store = _store(args, args.remote)
    progress = TerminalProgress()
    result = create_backup(backup_id=args.backup_id, store=store, progress=progress)
    verified = []
    if not args.no_verify:
        verified.append(verify_backup(result.backup_id, "local", progress=progress).to_dict())
        if store is not None:
            verified.append(verify_backup(result.backup_id, "s3", store=store, progress=progress).to_dict())
    lines = [
        f"backup {result.backup_id}: {result.files} files, {result.bytes / 1e6:.1f} MB in {result.seconds:.1f}s",
        f"  local: {result.path}",
    ]
    if result.remote:
        lines.append(
            f"  s3: s3://{result.remote['bucket']}/{result.remote['prefix']} "
            f"({result.uploaded} uploaded, {result.skipped_remote} unchanged)"
        )
    accs = result.evaluation.get("accuracies")
    if accs:
        lines.append(
            f"  champion {result.evaluation['checkpoint']}: "
            + ", ".join(f"{k} {v:.3f}" for k, v in accs.items())
        )
    lines += [f"  verified ({v['source']}): {v['files']} files OK" for v in verified]
    _print({"backup": result.to_dict(), "verify": verified}, args.json, lines)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Verify a backup's checksums."""
    from include.ops.backup.catalog import verify_backup

    store = _store(args, "required") if args.source == "s3" else None
    report = verify_backup(
        args.backup_id, args.source, store=store, progress=TerminalProgress(), raise_on_error=False
    )
    lines = [
        f"backup {report.backup_id} ({report.source}): {'OK' if report.ok else 'CORRUPTED'}, {report.files} files"
    ]
    lines += [f"  WARNING {line}" for line in describe_skipped(report.skipped)]
    lines += [f"  BAD {p}" for p in report.problems] + [f"  extra (ignored) {p}" for p in report.extra_files]
    _print(report.to_dict(), args.json, lines)
    return 0 if report.ok else 1


def cmd_list(args: argparse.Namespace) -> int:
    """List backups."""
    from include.ops.backup.catalog import list_backups

    store = _store(args, "required") if args.source == "s3" else None
    infos = list_backups(source=args.source, store=store)
    lines = [
        f"{i.backup_id}  {'complete  ' if i.complete else 'INCOMPLETE'}  {i.files:5d} files {i.bytes / 1e6:8.1f} MB"
        + (f"  ({i.problem})" if i.problem else "")
        for i in infos
    ] or [f"no backups ({args.source})"]
    _print([i.to_dict() for i in infos], args.json, lines)
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """Restore a backup into the live locations."""
    from include.ops.backup.restore import restore_backup

    store = _store(args, "required") if args.source == "s3" else None
    result = restore_backup(
        args.backup_id, args.source, store=store, dry_run=args.dry_run, progress=TerminalProgress()
    )
    verb = "would restore" if args.dry_run else "restored"
    lines = [
        f"{verb} backup {result.backup_id} ({result.source}): {result.files} files in {result.seconds:.1f}s"
    ]
    lines += [f"  WARNING {line}" for line in describe_skipped(result.skipped)]
    for area, change in result.changes.items():
        lines.append(
            f"  {area}: +{len(change['added'])} added, ~{len(change['changed'])} changed, -{len(change['removed'])} removed"
        )
    for key, path in result.previous.items():
        if path:
            lines.append(f"  previous {key} kept at {path}")
    if result.config.get("missing_secrets"):
        lines.append(
            "  SECRETS TO PROVIDE (not in backup: secrets and keys off the allowlist): "
            + ", ".join(result.config["missing_secrets"])
        )
    if not args.dry_run:
        lines.append("  next: make test-validation; restart/reload the serving app")
    _print(result.to_dict(), args.json, lines)
    return 0


def cmd_validate(args: argparse.Namespace) -> int:
    """Validate the live (restored) state against its backup."""
    from include.ops.backup.validate import validate_restore

    report = validate_restore(
        args.backup_id,
        args.source,
        raise_on_error=False,
        store=_store(args, "required") if args.source == "s3" else None,
    )
    lines = [f"validation against backup {report.backup_id}: {'PASSED' if report.ok else 'FAILED'}"]
    lines.append(f"  {report.checked_files} state files compared, champion {report.champion}")
    for task_id, acc in report.measured.items():
        lines.append(
            f"  {task_id}: measured {acc:.6f} recorded {report.recorded.get(task_id, float('nan')):.6f}"
        )
    lines += [f"  PROBLEM {p}" for p in report.problems]
    _print(report.to_dict(), args.json, lines)
    return 0 if report.ok else 1


def cmd_drill(args: argparse.Namespace) -> int:
    """Run a DR drill into a scratch folder."""
    from include.ops.backup.drill import DrillFailed, dr_drill

    store = _store(args, "required") if args.source == "s3" else None
    try:
        report = dr_drill(
            args.backup_id,
            args.source,
            store=store,
            keep_scratch=args.keep_scratch,
            progress=TerminalProgress(),
        )
    except DrillFailed as exc:
        report = exc.report
    lines = [
        f"DR drill of backup {report.backup_id}: {'PASSED' if report.ok else 'FAILED'}",
        f"  RTO (restore + validation): {report.restore_seconds}s; RPO (backup age): {report.backup_age_seconds}s",
        f"  report: {report.report_path}",
    ]
    lines += [f"  WARNING {line}" for line in describe_skipped(report.skipped)]
    lines += [f"  PROBLEM {p}" for p in report.problems]
    _print(report.to_dict(), args.json, lines)
    return 0 if report.ok else 1


def cmd_cleanup(args: argparse.Namespace) -> int:
    """Apply retention to checkpoints, backups and logs."""
    from include.ops.backup.cleanup import cleanup_backups, cleanup_checkpoints, cleanup_logs

    reports = []
    what = set(args.what.split(","))
    if "checkpoints" in what:
        reports.append(cleanup_checkpoints(args.keep, dry_run=args.dry_run))
    if "backups" in what:
        reports.append(cleanup_backups(args.daily, args.weekly, args.monthly, dry_run=args.dry_run))
        store = _store(args, args.remote)
        if store is not None:
            reports.append(
                cleanup_backups(
                    args.daily, args.weekly, args.monthly, source="s3", store=store, dry_run=args.dry_run
                )
            )
    if "logs" in what:
        reports.append(cleanup_logs(args.log_days, dry_run=args.dry_run))
    lines = []
    for r in reports:
        verb = "would remove" if r.dry_run else "removed"
        lines.append(f"{r.what}: {verb} {len(r.removed)} ({r.bytes_freed / 1e6:.1f} MB), kept {len(r.kept)}")
        lines += [f"  - {item}" for item in r.removed] + [f"  note: {n}" for n in r.notes]
    _print([r.to_dict() for r in reports], args.json, lines)
    return 0


def cmd_lock(args: argparse.Namespace) -> int:
    """Show or (forcibly) release the maintenance lock."""
    from include.ops.lock import read_lock, release_maintenance_lock

    info = read_lock()
    if args.release:
        if not args.force:
            print("refusing to release the lock without --force (a recovery may be running)", file=sys.stderr)
            return 2
        release_maintenance_lock("cli", force=True)
        print("maintenance lock released" if info else "no maintenance lock")
        return 0
    print(
        f"maintenance lock {info.describe()}{' (stale)' if info.expired else ''}"
        if info
        else "no maintenance lock"
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    """Argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="python -m include.ops.backup.cli", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("-v", "--verbose", action="store_true", help="log at INFO")
    sub = parser.add_subparsers(dest="command", required=True)

    def add_source(p: argparse.ArgumentParser) -> None:
        p.add_argument(
            "--source", choices=("local", "s3"), default="local", help="where the backup is read from"
        )

    def add_id(p: argparse.ArgumentParser, default: str | None = "latest") -> None:
        p.add_argument("--backup-id", type=_backup_id_arg, default=default, help="YYYYMMDDTHHMMSSZ or latest")

    p = sub.add_parser("backup", help="create a backup (local, plus S3 when configured)")
    p.add_argument("--backup-id", type=_backup_id_arg, default=None, help="id to (re)use; default: now")
    p.add_argument("--remote", choices=("auto", "off", "required"), default="auto", help="S3 upload")
    p.add_argument("--no-verify", action="store_true", help="skip re-reading the backup")
    p.set_defaults(func=cmd_backup)
    for name, func, help_text in (
        ("verify", cmd_verify, "check every checksum of a backup"),
        ("restore", cmd_restore, "restore a backup into the live locations"),
        ("validate", cmd_validate, "compare restored state with its backup (make test-validation)"),
        ("drill", cmd_drill, "restore into scratch and validate, live state untouched"),
    ):
        p = sub.add_parser(name, help=help_text)
        add_id(p)
        add_source(p)
        p.set_defaults(func=func)
        if name == "restore":
            p.add_argument(
                "--dry-run", action="store_true", help="verify and stage, print changes, touch nothing"
            )
        if name == "drill":
            p.add_argument(
                "--keep-scratch", action="store_true", help="keep the scratch restore for inspection"
            )
    p = sub.add_parser("list", help="list backups")
    add_source(p)
    p.set_defaults(func=cmd_list)
    p = sub.add_parser("cleanup", help="retention for checkpoints, backups and logs")
    p.add_argument(
        "--what", default="checkpoints,backups,logs", help="comma list of checkpoints,backups,logs"
    )
    p.add_argument("--keep", type=int, default=10, help="checkpoints to keep (runbook --keep=10)")
    p.add_argument("--daily", type=int, default=7)
    p.add_argument("--weekly", type=int, default=4)
    p.add_argument("--monthly", type=int, default=12)
    p.add_argument("--log-days", type=int, default=30)
    p.add_argument("--remote", choices=("auto", "off", "required"), default="auto", help="also clean S3")
    p.add_argument("--dry-run", action="store_true", help="list what would go, remove nothing")
    p.set_defaults(func=cmd_cleanup)
    p = sub.add_parser("lock", help="show the maintenance lock")
    p.add_argument("--release", action="store_true")
    p.add_argument("--force", action="store_true")
    p.set_defaults(func=cmd_lock)
    return parser


def main(argv: list[str] | None = None, store_factory: StoreFactory | None = None) -> int:
    """Run one command; returns the exit status. ``store_factory`` makes the S3 store (None: local only)."""
    args = build_parser().parse_args(argv)
    args.store_factory = store_factory
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # importing Airflow (for the s3_backup connection) turns INFO logging on: the progress display suffices
    logging.getLogger("include.ops").setLevel(level)
    try:
        return args.func(args)
    except (BackupError, MaintenanceLocked, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
