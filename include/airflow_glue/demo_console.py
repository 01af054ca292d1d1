"""What `make demo` shows: one line per step on the terminal, every Airflow and task log line in a file.

``DemoConsole`` keeps the terminal (a duplicate of fd 1) for the demo's own lines and, around each DAG run,
points fds 1 and 2 at ``<log dir>/demo-<UTC time>.log``: Airflow's structured logs, task prints, warnings and
MLflow's progress bars land there whoever writes them (Python objects, C code, child processes). Progress comes
from the JSON logs the tasks write anyway, followed on a thread (``include.ops.jsonlog.JsonLogTail``):
``<log dir>/data_validation.log`` holds one outcome per landed file, ``<log dir>/training.log`` one line per
epoch. ``verbose=True`` redirects nothing (everything on the terminal, as before), and shows no epoch bars.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from include.ops.jsonlog import JsonLogTail
from include.ops.progress import ProgressBar
from include.ops.settings import Settings

TAIL_LINES = 20  # lines of the log shown when a run failed
TAIL_WIDTH = 400  # characters kept of each (structured log lines run long)
# the per-epoch line of include.ops.training (learn_one's default on_epoch_end), epoch counted from 0
EPOCH_LINE = re.compile(r"^task (?P<task>\S+) epoch (?P<epoch>\d+) loss (?P<loss>\S+)$")
TRAINING_LOGGER = "include.ops.training"
# model.training's first line for a task, just before its first epoch: the bar's clock starts there
START_LINE = re.compile(r"^learning task (?P<task>\S+) ")


class DemoConsole:
    """The terminal for the demo's lines and the log file for everything else; a context manager."""

    def __init__(self, log_dir: Path, verbose: bool = False) -> None:
        self.verbose = verbose
        self.log_path: Path | None = None
        self._log_fd: int | None = None
        self.out: IO[str] = sys.stdout
        if verbose:
            return
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"demo-{datetime.now(UTC):%Y%m%dT%H%M%SZ}.log"
        self._log_fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        sys.stdout.flush()
        self.out = os.fdopen(os.dup(1), "w", buffering=1, encoding="utf-8", errors="replace")

    def __enter__(self) -> DemoConsole:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the log file and the terminal duplicate (idempotent)."""
        if self._log_fd is not None:
            os.close(self._log_fd)
            self._log_fd = None
            self.out.close()
            self.out = sys.stdout

    def say(self, text: str = "") -> None:
        """One line of the demo's own on the terminal."""
        print(text, file=self.out, flush=True)

    @contextlib.contextmanager
    def captured(self) -> Iterator[None]:
        """Inside the block fds 1 and 2 write to the log file (verbose: unchanged)."""
        if self._log_fd is None:
            yield
            return
        sys.stdout.flush()
        sys.stderr.flush()
        saved = (os.dup(1), os.dup(2))
        os.dup2(self._log_fd, 1)
        os.dup2(self._log_fd, 2)
        try:
            yield
        finally:
            for stream in (sys.stdout, sys.stderr):
                with contextlib.suppress(Exception):
                    stream.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)

    def tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The last ``lines`` lines of the log file, each cut to TAIL_WIDTH characters ([] when verbose)."""
        if self.log_path is None or not self.log_path.is_file():
            return []
        with self.log_path.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 256 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
        kept = [line.rstrip() for line in text.splitlines() if line.strip()][-lines:]
        return [line if len(line) <= TAIL_WIDTH else line[: TAIL_WIDTH - 3] + "..." for line in kept]

    def report_failure(self, what: str) -> None:
        """``what`` on the terminal, then the end of the log file and its path (verbose: the log is above)."""
        if self.log_path is None:
            self.say(f"!! {what}: see the task logs above")
            return
        self.say(f"!! {what}; the last lines of {self.log_path}:")
        for line in self.tail():
            self.say(f"   | {line}")
        self.say(f"!! full Airflow and task logs: {self.log_path}")

    def follow(
        self, path: Path, on_record: Callable[[dict[str, Any]], None]
    ) -> contextlib.AbstractContextManager:
        """Follow the JSON log ``path`` during the block (verbose: nothing is followed)."""
        return contextlib.nullcontext() if self.verbose else JsonLogTail(path, on_record)


class ValidationProgress:
    """``on_record`` for ``data_validation.log``: one line per landed file's outcome, as validation words it.

    Seconds count from the previous outcome (the first from the creation of this object, the run's start).
    """

    def __init__(self, say: Callable[[str], None], clock: Callable[[], float] = time.monotonic) -> None:
        self.say = say
        self.clock = clock
        self.last = clock()
        self.verdicts: Counter[str] = Counter()

    def __call__(self, record: dict[str, Any]) -> None:
        """Print one record that names a file; a warning is shown as such and does not count as the outcome."""
        if not record.get("file") or not record.get("message"):
            return
        if record.get("level") == "WARNING":
            self.say(f"   ! {record['message']}")
            return
        now = self.clock()
        verdict = (
            "rejected" if record.get("alert") else "skipped" if record.get("validated_as") else "validated"
        )
        self.verdicts[verdict] += 1
        mark = "!!" if verdict == "rejected" else "  "
        self.say(f" {mark}{record['message']}  ({now - self.last:.1f}s)")
        self.last = now


class TrainingProgress:
    """``on_record`` for ``training.log``: a progress bar per task over its epochs (``include.ops.progress``).

    On a terminal the bar redraws in place; elsewhere it prints a line at every quarter and a last one. Its
    clock is the records' own ``ts``, so rate and ETA are those of the training, not of the polling.
    """

    def __init__(self, stream: IO[str], epochs: int | None) -> None:
        self.stream = stream
        self.epochs = epochs
        self.bars: dict[str, ProgressBar] = {}
        self._now = time.time()

    def _bar(self, task: str) -> ProgressBar:
        if task not in self.bars:
            self.bars[task] = ProgressBar(
                self.epochs, label=f"   {task} epoch", stream=self.stream, clock=lambda: self._now
            )
        return self.bars[task]

    def __call__(self, record: dict[str, Any]) -> None:
        """Start a task's bar at its first line, advance it at each epoch line."""
        message = str(record.get("message", ""))
        start = START_LINE.match(message)
        match = EPOCH_LINE.match(message) if record.get("logger") == TRAINING_LOGGER else None
        if start is None and match is None:
            return
        try:
            self._now = datetime.fromisoformat(str(record["ts"])).timestamp()
        except (KeyError, ValueError):
            self._now = time.time()
        if start is not None:
            self._bar(start["task"])
        if match is None:
            return
        bar = self._bar(match["task"])
        bar.label = f"   {match['task']} loss {match['loss']}"
        bar.update(int(match["epoch"]) + 1 - bar.count)

    def close(self, failed: bool = False) -> None:
        """Draw every bar's last state."""
        for bar in self.bars.values():
            bar.close(failed=failed and (bar.total is None or bar.count < bar.total))


def learned_lines(settings: Settings, dag_run_id: str) -> list[str]:
    """One line per task the DAG run learned, in the words of the gate task's log (``run_report``)."""
    from include.ops.run_report import dag_run_lines

    return [f"   {line}" for line in dag_run_lines(settings, dag_run_id)]
