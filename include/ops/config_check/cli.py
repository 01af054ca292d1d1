"""``python -m include.ops.config_check``: ``check`` (default), ``generate``, ``backup``, ``apply``; exit 1 on any problem."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from include.ops.config_check.checks import apply_config, run_checks
from include.ops.config_check.envfile import backup_config, write_env
from include.ops.config_check.values import Problem
from include.ops.settings import PROJECT_ROOT

SKIPPABLE = ("process-env", "compose", "prometheus", "dags")


def print_problems(problems: list[Problem], what: str) -> int:
    """Print ``OK: what`` or every problem with its fix; return the exit status."""
    if not problems:
        print(f"OK: {what}")
        return 0
    print(f"{len(problems)} configuration problem(s) in {what}:")
    for problem in problems:
        print(f"  {problem}")
    return 1


def build_parser(description: str | None = None) -> argparse.ArgumentParser:
    """The parser of every sub-command."""
    parser = argparse.ArgumentParser(
        prog="python -m include.ops.config_check",
        description=description,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    default_env = PROJECT_ROOT / ".env"
    sub = parser.add_subparsers(dest="command")
    check = sub.add_parser("check", help="validate the configuration (default)")
    check.add_argument("--env-file", type=Path, default=default_env)
    check.add_argument(
        "--no-env-file", action="store_true", help="skip the env file (CI without a deployment)"
    )
    check.add_argument("--skip", default="", help="comma-separated: " + ",".join(SKIPPABLE))
    check.add_argument("--expect-dag", action="append", default=[], help="DAG id that must be present")
    gen = sub.add_parser("generate", help="create/complete the env file from .env.example with new secrets")
    gen.add_argument("--env-file", type=Path, default=default_env)
    bak = sub.add_parser("backup", help="copy the env file to <name>.backup.<timestamp>")
    bak.add_argument("--env-file", type=Path, default=default_env)
    bak.add_argument("--dest", type=Path, default=None)
    app = sub.add_parser("apply", help="validate FILE, back up the env file, then replace it with FILE")
    app.add_argument("file", type=Path)
    app.add_argument("--env-file", type=Path, default=default_env)
    return parser


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    unknown = skip - set(SKIPPABLE)
    if unknown:
        parser.error(f"unknown --skip value(s): {sorted(unknown)}")
    problems = run_checks(
        None if args.no_env_file else args.env_file,
        compose="compose" not in skip,
        prometheus="prometheus" not in skip,
        dags="dags" not in skip,
        process_env="process-env" not in skip,
        expect_dags=args.expect_dag,
    )
    checked = [c for c in SKIPPABLE if c not in skip]
    if not args.no_env_file:
        checked.insert(0, str(args.env_file))
    return print_problems(problems, ", ".join(checked))


def _apply(args: argparse.Namespace) -> int:
    problems, backup = apply_config(args.file, args.env_file)
    if problems:
        print_problems(problems, str(args.file))
        print(f"nothing applied: {args.env_file} is unchanged")
        return 1
    print(f"applied {args.file} -> {args.env_file}" + (f" (previous: {backup})" if backup else ""))
    print("roll it out: docker-compose up -d --no-deps <service>   (runbook: rolling update)")
    return 0


def main(argv: list[str] | None = None, description: str | None = None) -> int:
    """Run one sub-command (``check`` when none is named); return the exit status."""
    parser = build_parser(description)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv.insert(0, "check")
    args = parser.parse_args(argv)
    if args.command == "generate":
        path, generated = write_env(args.env_file)
        print(
            f"wrote {path} (mode 0600); generated: {', '.join(generated) or 'nothing (all secrets already set)'}"
        )
        return 0
    if args.command == "backup":
        try:
            print(f"backed up to {backup_config(args.env_file, args.dest)}")
        except FileNotFoundError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        return 0
    if args.command == "apply":
        return _apply(args)
    return _check(parser, args)
