"""Operator CLI: the continual-learning state from a terminal (reads MLflow; no Airflow needed).

    python -m include.ops.cli status [--no-color] [--json] [--check]
    python -m include.ops.cli history [--no-color] [--json] [--limit N]
    python -m include.ops.cli alias-history [--no-color] [--json] [--limit N]
    python -m include.ops.cli export [--out DIR]

Exit codes: 0 ok; 1 ``status --check`` found retention below the threshold; 2 the command failed
(MLflow unreadable, export folder not writable).
Colour is on for terminals unless ``--no-color`` or ``NO_COLOR`` is set; ``--color`` forces it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from include.ops import cl_state, tracking
from include.ops.progress import ProgressBar
from include.ops.settings import RETENTION_THRESHOLD, Settings, get_settings

GREEN, RED, DIM, BOLD, RESET = "\033[32m", "\033[31m", "\033[2m", "\033[1m", "\033[0m"


class Palette:
    """ANSI styling that collapses to plain text when colour is off."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled

    def paint(self, text: str, code: str) -> str:
        """``text`` wrapped in ``code`` ... reset, or unchanged when colour is off."""
        return f"{code}{text}{RESET}" if self.enabled else text

    def by_threshold(self, text: str, value: float | None, threshold: float) -> str:
        """Green at or above ``threshold``, red below, dim when there is no value."""
        if value is None:
            return self.paint(text, DIM)
        return self.paint(text, GREEN if value >= threshold else RED)

    def bold(self, text: str) -> str:
        """Bold ``text``."""
        return self.paint(text, BOLD)


def use_colour(choice: str, stream: IO[str]) -> bool:
    """``always``/``never`` as given; ``auto`` = a TTY and ``NO_COLOR`` unset (https://no-color.org)."""
    if choice == "always":
        return True
    if choice == "never":
        return False
    return stream.isatty() and not os.environ.get("NO_COLOR")


def _num(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _short(run_id: str | None) -> str:
    return (run_id or "-")[:8]


def _time(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def format_matrix(acc: dict[str, Any] | None, pal: Palette, threshold: float) -> list[str]:
    """Lines of the accuracy matrix table (row i: after training task i; column j: evaluated on task j)."""
    if not acc:
        return ["(no accuracy matrix logged for the latest run)"]
    ids = acc["task_ids"]
    label_w = max(len(f"after {t}") for t in ids)
    col_w = max(6, *(len(t) for t in ids))
    lines = [" " * label_w + "".join(f"  {t:>{col_w}}" for t in ids)]
    for i, row in enumerate(acc["matrix"]):
        cells = []
        for j in range(len(ids)):
            v = row[j] if j < len(row) else None
            cells.append("  " + pal.by_threshold(f"{_num(v, 2):>{col_w}}", v, threshold))
        lines.append(f"{'after ' + ids[i]:<{label_w}}" + "".join(cells))
    return lines


def format_retention(state: dict[str, Any], pal: Palette) -> list[str]:
    """Lines of the retention table of the latest run, each task against the threshold, then the mean."""
    thr = state["retention_threshold"]
    rows = state["retention"]
    if not rows:
        return ["(no retention logged yet)"]
    w = max(6, *(len(r["task_id"]) for r in rows))
    lines = [f"{'task':<{w}}  {'retention':>9}  status"]
    for r in rows:
        v = r["retention"]
        status = {True: "ok", False: "BELOW", None: "n/a"}[r["passed"]]
        lines.append(f"{r['task_id']:<{w}}  " + pal.by_threshold(f"{_num(v):>9}  {status}", v, thr))
    mean = state["mean_retention"]
    status = "n/a" if mean is None else ("ok" if mean >= thr else "BELOW")
    lines.append(f"{'mean':<{w}}  " + pal.by_threshold(f"{_num(mean):>9}  {status}", mean, thr))
    low = state.get("min_retention")  # what the gate judges: every old task ('-' for runs before the metric)
    status = "n/a" if low is None else ("ok" if low >= thr else "BELOW")
    lines.append(f"{'min':<{w}}  " + pal.by_threshold(f"{_num(low):>9}  {status}", low, thr))
    return lines


def _alias_line(name: str, info: dict[str, Any] | None) -> str:
    if not info:
        return f"{name + ':':<12}not set"
    return (
        f"{name + ':':<12}v{info['version']} ({info.get('task_id') or '?'})  run {_short(info.get('run_id'))}"
        f"  {info.get('run_url') or ''}"
    ).rstrip()


def format_status(state: dict[str, Any], pal: Palette) -> str:
    """The whole ``status`` report as text."""
    latest = state["latest_run"]
    lines = [
        pal.bold(f"Continual learning: experiment {state['experiment']}") + f"  ({state['tracking_uri']})",
        f"{'learned:':<12}{state['tasks_learned']} task(s) {', '.join(state['task_ids'])}".rstrip(),
        f"{'latest run:':<12}"
        + (f"{latest['task_id']}  {_short(latest['run_id'])}  {latest['url']}" if latest else "none"),
        _alias_line("champion", state["champion"]),
        _alias_line("challenger", state["challenger"]),
        "",
        pal.bold("Accuracy matrix R[i][j]") + " (row: after training task i; column: evaluated on task j)",
        *format_matrix(state["acc_matrix"], pal, state["retention_threshold"]),
        "",
        pal.bold(f"Retention of the latest run (threshold {state['retention_threshold']:.2f})"),
        *format_retention(state, pal),
    ]
    return "\n".join(lines) + "\n"


def format_history(rows: list[dict[str, Any]], pal: Palette, threshold: float) -> str:
    """One line per learned run, oldest first: when, accuracies, mean retention, version and aliases."""
    if not rows:
        return "(nothing learned yet)\n"
    w = max(4, *(len(r["task_id"] or "-") for r in rows))
    head = (
        f"{'#':>2}  {'task':<{w}}  {'run':<8}  {'started (UTC)':<19}  {'new_acc':>7}  {'avg_acc':>7}  "
        f"{'mean_ret':>8}  {'version':>7}  aliases"
    )
    lines = [pal.bold(head)]
    for i, r in enumerate(rows):
        mean = r["mean_retention"]
        lines.append(
            f"{i:>2}  {r['task_id'] or '-':<{w}}  {_short(r['run_id']):<8}  {_time(r['start_time_ms']):<19}  "
            f"{_num(r['new_task_acc']):>7}  {_num(r['avg_acc']):>7}  "
            + pal.by_threshold(f"{_num(mean):>8}", mean, threshold)
            + f"  {r['version'] or '-':>7}  {','.join(r['aliases'])}".rstrip()
        )
    return "\n".join(lines) + "\n"


def format_alias_moves(rows: list[dict[str, Any]], pal: Palette) -> str:
    """One line per alias move, oldest first: seq, when, alias, from -> to, kind, DAG run, reason, approver."""
    if not rows:
        return "(no alias moves recorded yet)\n"
    lines = [
        pal.bold(f"{'#':>3}  {'when (UTC)':<19}  {'alias':<10}  {'move':<11}  {'kind':<10}  dag run / reason")
    ]
    for r in rows:
        move = f"{r['from_version'] or '-'} -> {r['to_version'] or '-'}"
        when = datetime.fromtimestamp(float(r["time"]), UTC).strftime("%Y-%m-%d %H:%M:%S")
        who = f" (approved by {r['approver']})" if r.get("approver") else ""
        lines.append(
            f"{r['seq']:>3}  {when:<19}  {r['alias']:<10}  {move:<11}  {r['kind']:<10}  "
            f"{r.get('dag_run_id') or '-'}: {r['reason']}{who}"
        )
    return "\n".join(lines) + "\n"


def export(out_dir: Path, settings: Settings, quiet: bool = False, stream: IO[str] | None = None) -> Path:
    """Write state.json, history.json and every learned run's acc_matrix.json/.png under ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    uri, exp, model = settings.mlflow_tracking_uri, settings.mlflow_experiment, settings.registered_model
    state = cl_state.continual_state(uri, exp, model, threshold=settings.retention_threshold)
    rows = cl_state.learning_history(uri, exp, model)
    (out_dir / "state.json").write_text(json.dumps(state, indent=2) + "\n")
    (out_dir / "history.json").write_text(json.dumps(rows, indent=2) + "\n")
    client = tracking.mlflow_client(settings, read_only=True) if rows else None
    with ProgressBar(len(rows), "export runs", unit="runs", enabled=not quiet, stream=stream) as bar:
        for i, row in enumerate(rows):
            run_dir = out_dir / "runs" / f"{i:03d}_{row['task_id']}_{_short(row['run_id'])}"
            run_dir.mkdir(parents=True, exist_ok=True)
            for name in ("acc_matrix.json", "acc_matrix.png"):
                try:
                    client.download_artifacts(row["run_id"], name, str(run_dir))
                except Exception as exc:  # an old run may lack the PNG: note it, keep exporting
                    (run_dir / f"{name}.missing").write_text(f"{exc}\n")
            bar.update()
    return out_dir


def _settings(args: argparse.Namespace) -> Settings:
    """The project settings with the command line's MLflow options applied."""
    overrides = {
        "mlflow_tracking_uri": args.tracking_uri,
        "mlflow_experiment": args.experiment,
        "registered_model": args.model,
    }
    return get_settings().replace(**{k: v for k, v in overrides.items() if v})


def build_parser() -> argparse.ArgumentParser:
    """The ``include.ops.cli`` argument parser."""
    parser = argparse.ArgumentParser(prog="python -m include.ops.cli", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tracking-uri", help="MLflow tracking URI (default: MLFLOW_TRACKING_URI / settings)"
    )
    parser.add_argument("--experiment", help="MLflow experiment (default: CT_MLFLOW_EXPERIMENT)")
    parser.add_argument("--model", help="registered model (default: CT_REGISTERED_MODEL)")
    sub = parser.add_subparsers(dest="command", required=True)

    def colour_opts(p: argparse.ArgumentParser) -> None:
        p.add_argument("--color", dest="color", action="store_const", const="always", default="auto")
        p.add_argument("--no-color", dest="color", action="store_const", const="never", help="plain text")
        p.add_argument("--json", action="store_true", help="print JSON instead of tables")

    status = sub.add_parser("status", help="accuracy matrix and retention table of the latest run")
    colour_opts(status)
    status.add_argument(
        "--threshold",
        type=float,
        default=None,
        help=f"retention threshold (default CT_RETENTION_THRESHOLD, else {RETENTION_THRESHOLD})",
    )
    status.add_argument(
        "--check", action="store_true", help="exit 1 when any retention is below the threshold"
    )
    history = sub.add_parser("history", help="one line per learned task, oldest first")
    colour_opts(history)
    history.add_argument("--limit", type=int, default=None, help="only the last N runs")
    moves = sub.add_parser("alias-history", help="every move of champion/challenger, oldest first")
    colour_opts(moves)
    moves.add_argument("--limit", type=int, default=None, help="only the last N moves")
    exp = sub.add_parser("export", help="write state, history and every run's accuracy matrix to a folder")
    exp.add_argument("--out", type=Path, default=None, help="default: <reports_dir>/continual_state")
    exp.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: Sequence[str] | None = None, stdout: IO[str] | None = None) -> int:
    """Run one subcommand; returns the process exit code (see the module docstring)."""
    out = stdout or sys.stdout
    args = build_parser().parse_args(argv)
    try:
        settings = _settings(args)
    except ValueError as exc:  # a bad CT_* value (pydantic's ValidationError is a ValueError)
        print(f"error: {args.command}: invalid settings: {exc}", file=sys.stderr)
        return 2
    try:
        with cl_state.fail_fast_http():  # an operator wants a fast, clear failure, not minutes of retries
            return _run(args, settings, out)
    except Exception as exc:  # one readable line for operators instead of a traceback
        print(f"error: {args.command}: {exc} (MLflow {settings.mlflow_tracking_uri})", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace, settings: Settings, out: IO[str]) -> int:
    """Dispatch one parsed subcommand; returns its exit code."""
    uri, exp, model = settings.mlflow_tracking_uri, settings.mlflow_experiment, settings.registered_model
    if args.command == "status":
        threshold = settings.retention_threshold if args.threshold is None else args.threshold
        state = cl_state.continual_state(uri, exp, model, threshold=threshold)
        if args.json:
            out.write(json.dumps(state, indent=2) + "\n")
        else:
            out.write(format_status(state, Palette(use_colour(args.color, out))))
        mean = state["mean_retention"]
        below = bool(state["below_threshold"]) or (mean is not None and mean < threshold)
        return 1 if args.check and below else 0
    if args.command == "history":
        rows = cl_state.learning_history(uri, exp, model)
        if args.limit:
            rows = rows[-args.limit :]
        if args.json:
            out.write(json.dumps(rows, indent=2) + "\n")
        else:
            pal = Palette(use_colour(args.color, out))
            out.write(format_history(rows, pal, settings.retention_threshold))
            moves = cl_state.alias_moves(uri, model)  # shown once there are any (make history)
            if moves:
                out.write("\n" + pal.bold("Alias moves (make alias-history: all of them)") + "\n")
                out.write(format_alias_moves(moves[-(args.limit or 10) :], pal))
        return 0
    if args.command == "alias-history":
        moves = cl_state.alias_moves(uri, model)
        if args.limit:
            moves = moves[-args.limit :]
        if args.json:
            out.write(json.dumps(moves, indent=2) + "\n")
        else:
            out.write(format_alias_moves(moves, Palette(use_colour(args.color, out))))
        return 0
    target = args.out or settings.reports_dir / "continual_state"
    out.write(f"exported to {export(target, settings, quiet=args.quiet)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
