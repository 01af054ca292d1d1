"""`make validate-data`: validate every new file of the landing zone and print a per-file report.

    python -m include.ops.validation.cli [validate] [--json] [--no-data-docs]
    python -m include.ops.validation.cli quarantine          # list rejected files and why
    python -m include.ops.validation.cli release FOLDER [--file FIXED.csv]
    python -m include.ops.validation.cli retract FILE         # a validated batch not learned yet -> quarantine

This module serves the local landing zone (``CT_LANDING_DIR``); ``make validate-data`` runs the same commands
through ``python -m include.airflow_glue.landing_s3``, which picks the S3 zone when the ``s3`` connection exists.
Exit codes: 0 every file validated or skipped, 1 a file was rejected (quarantined), 2 validation could not
run (no manifest, unreadable suite or store index). ``retract``: 0 retracted, 1 refused (not validated, or
learned per MLflow), 2 could not run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from include.ops.settings import Settings, get_settings
from include.ops.validation.config import get_validation_config
from include.ops.validation.landing import Landing, LocalLanding
from include.ops.validation.outcome import ValidationSetupError

LandingFor = Callable[[Settings], Landing]


def _cell(text: object, width: int) -> str:
    value = "-" if text in (None, "") else str(text)
    return value if len(value) <= width else value[: width - 3] + "..."


def _logs_to_stderr() -> None:
    """Keep stdout for the report: Airflow's logging setup (on its first import) logs to stdout."""
    import logging

    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and getattr(handler, "stream", None) is sys.stdout:
            handler.setStream(sys.stderr)


def local_landing(settings: Settings) -> Landing:
    """The local landing zone; refuses when the ``s3`` connection is set in the environment (S3 needs the glue)."""
    if os.environ.get(f"AIRFLOW_CONN_{settings.landing_s3_conn_id.upper()}"):
        raise ValidationSetupError(
            f"the {settings.landing_s3_conn_id!r} connection selects the S3 landing zone: "
            "run `make validate-data` or `python -m include.airflow_glue.landing_s3`"
        )
    return LocalLanding(settings.landing_dir)


def cmd_validate(args: argparse.Namespace, landing_for: LandingFor = local_landing) -> int:
    """Validate the landing zone; print a table (or JSON lines); 1 if any file was rejected."""
    from include.ops.validation.zone import validate_landing_zone

    settings = get_settings()
    config, landing = get_validation_config(settings), landing_for(settings)
    _logs_to_stderr()
    build_docs = False if args.no_data_docs else None
    results = validate_landing_zone(settings, config, build_docs=build_docs, landing=landing)
    if args.json:
        for result in results:
            print(json.dumps(result.to_dict(), default=str))
    else:
        print(f"Landing zone: {landing.describe()} ({landing.kind})")
        if not results:
            print("No task batches in the landing zone.")
        print(f"{'FILE':<24} {'STATUS':<10} {'TASK':<8} {'ROWS':>7}  DETAIL")
        for r in results:
            detail = {"validated": f"-> {r.path}", "skipped": r.reason}.get(r.status, r.reason)
            print(
                f"{_cell(r.name, 24):<24} {r.status.upper():<10} {_cell(r.task_id, 8):<8} {_cell(r.rows, 7):>7}  {detail}"
            )
            if r.status == "rejected":
                print(f"{'':<52}quarantined: {r.path}\n{'':<52}report:      {r.report_path}")
            if r.data_docs:
                print(f"{'':<52}data docs:   {r.data_docs}")
        counts = {s: sum(r.status == s for r in results) for s in ("validated", "rejected", "skipped")}
        print(", ".join(f"{n} {s}" for s, n in counts.items()))
    return 1 if any(r.status == "rejected" for r in results) else 0


def cmd_quarantine(args: argparse.Namespace, landing_for: LandingFor = local_landing) -> int:
    """List the quarantine index, newest last."""
    from include.ops.validation.store import read_index

    entries = read_index(get_settings().quarantine_dir).get("entries", [])
    for e in entries:
        released = " (released)" if e.get("released") else ""
        print(f"{e.get('folder')}{released}\n    {e.get('original_name')}: {e.get('reason')}")
    print(f"{len(entries)} quarantined file(s) in {get_settings().quarantine_dir}")
    return 0


def cmd_release(args: argparse.Namespace, landing_for: LandingFor = local_landing) -> int:
    """Land a quarantined file again (the fixed copy given by --file, else the original bytes)."""
    from include.ops.validation.prechecks import PrecheckFailure, check_file_name
    from include.ops.validation.store import mark_released, read_index

    settings = get_settings()
    folder = Path(args.folder)
    name = folder.name if folder.is_absolute() or len(folder.parts) > 1 else args.folder
    entry = next(
        (e for e in read_index(settings.quarantine_dir).get("entries", []) if e.get("folder") == name), None
    )
    if entry is None:
        print(f"no quarantine entry {name!r} in {settings.quarantine_dir}", file=sys.stderr)
        return 2
    target = args.name or entry["original_name"]
    try:
        check_file_name(target)
    except PrecheckFailure as exc:
        print(
            f"cannot release as {target!r}: {exc}; pass --name with the manifest's file name", file=sys.stderr
        )
        return 2
    src = Path(args.file) if args.file else Path(entry["file"])
    where = landing_for(settings).land(src, target)
    mark_released(settings.quarantine_dir, name, where)
    print(f"released {src} -> {where}; the next data_validation run validates it (quarantine copy kept)")
    return 0


def cmd_retract(args: argparse.Namespace, landing_for: LandingFor = local_landing) -> int:
    """Retract a validated batch that has not been learned yet: store copy (and landing copy) to quarantine."""
    from include.ops.validation.retract import RetractRefused, retract_batch
    from include.ops.validation.store import RETRACTED_REASON

    settings = get_settings()
    try:
        done = retract_batch(settings, args.file, landing=landing_for(settings))
    except RetractRefused as exc:
        print(f"not retracted: {exc}", file=sys.stderr)
        return 1
    print(f"retracted {done.name} (task {done.task_id}, sha256 {done.sha256[:12]}): {RETRACTED_REASON}")
    print(f"    quarantined: {done.quarantined}\n    report:      {done.report}")
    if done.landing_copy:
        print(f"    landing copy with the same bytes quarantined too: {done.landing_copy}")
    print(
        f"{done.name} is out of {settings.validated_dir} (index and manifest); land a corrected file under the "
        "same name and validate it"
    )
    return 0


def main(argv: list[str] | None = None, landing_for: LandingFor = local_landing) -> int:
    """Parse arguments and run a sub-command on the zone ``landing_for`` picks; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m include.ops.validation.cli",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command")
    val = sub.add_parser("validate", help="validate every new file of the landing zone (default)")
    for p in (parser, val):
        p.add_argument("--json", action="store_true", help="one JSON object per file instead of a table")
        p.add_argument("--no-data-docs", action="store_true", help="skip building GX data docs")
    sub.add_parser("quarantine", help="list quarantined files and why")
    rel = sub.add_parser("release", help="land a quarantined file again after fixing it")
    rel.add_argument("folder", help="quarantine folder name (see the `quarantine` command)")
    rel.add_argument("--file", help="fixed copy to land instead of the quarantined original bytes")
    rel.add_argument("--name", help="landing name (default: the name it arrived under)")
    ret = sub.add_parser(
        "retract", help="move a validated batch not learned yet out of the store, to quarantine"
    )
    ret.add_argument("file", help="file name of the validated batch (e.g. task_2.csv)")
    args = parser.parse_args(argv)
    from include.ops.validation.gx_suite import SuiteError

    handlers = {"quarantine": cmd_quarantine, "release": cmd_release, "retract": cmd_retract}
    try:
        return handlers.get(args.command, cmd_validate)(args, landing_for)
    except (ValidationSetupError, SuiteError, ValueError) as exc:
        print(f"data validation could not run: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
