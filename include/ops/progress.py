"""Plain-stdlib progress bars for long operator commands (CLI, backups); they write to stderr only.

On a terminal the bar redraws in place (throttled); elsewhere (Airflow task logs, CI, pipes) it prints one
plain line per ``log_every`` percent so logs stay readable::

    with ProgressBar(total=size, label="upload", unit="B") as bar:
        for chunk in chunks:
            send(chunk)
            bar.update(len(chunk))

    for item in track(items, label="export"):
        ...
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import IO, Any, TypeVar

T = TypeVar("T")
_BYTE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


def human_bytes(n: float) -> str:
    """``1536`` -> ``"1.5 KiB"``; binary units, one decimal above bytes."""
    value = float(n)
    for unit in _BYTE_UNITS:
        if abs(value) < 1024 or unit == _BYTE_UNITS[-1]:
            return f"{int(value)} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def human_seconds(seconds: float) -> str:
    """``75`` -> ``"1:15"``, ``3700`` -> ``"1:01:40"``."""
    s = max(0, int(round(seconds)))
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class ProgressBar:
    """A progress bar over ``total`` units (None: unknown total, shows a counter); a context manager.

    ``unit="B"`` formats counts as bytes. ``interactive`` defaults to ``stream.isatty()``. ``enabled=False``
    silences it (e.g. ``--quiet``). ``clock`` is injectable for tests.
    """

    def __init__(
        self,
        total: int | None,
        label: str = "",
        *,
        unit: str = "",
        stream: IO[str] | None = None,
        width: int = 28,
        enabled: bool = True,
        interactive: bool | None = None,
        min_interval: float = 0.1,
        log_every: int = 25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if total is not None and total < 0:
            raise ValueError(f"total must be >= 0 or None, got {total}")
        if not 1 <= log_every <= 100:
            raise ValueError(f"log_every must be in 1..100, got {log_every}")
        self.total = total
        self.label = label
        self.unit = unit
        self.stream = stream if stream is not None else sys.stderr
        self.width = width
        self.enabled = enabled
        self.interactive = self.stream.isatty() if interactive is None else interactive
        self.min_interval = min_interval
        self.log_every = log_every
        self._clock = clock
        self.count = 0
        self._start = clock()
        self._last_draw = -float("inf")
        self._next_pct = log_every
        self._closed = False

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # GeneratorExit: a consumer of ``track`` stopped early, which is not a failure
        self.close(failed=exc_type is not None and not issubclass(exc_type, GeneratorExit))

    def _fmt_count(self, n: float) -> str:
        return human_bytes(n) if self.unit == "B" else f"{int(n)}{(' ' + self.unit) if self.unit else ''}"

    def render(self) -> str:
        """The current bar as one line (no newline, no carriage return)."""
        elapsed = self._clock() - self._start
        rate = self.count / elapsed if elapsed > 0 else 0.0
        rate_txt = f"{human_bytes(rate)}/s" if self.unit == "B" else f"{rate:.1f}/s"
        prefix = f"{self.label} " if self.label else ""
        if not self.total:
            return f"{prefix}{self._fmt_count(self.count)} {human_seconds(elapsed)} {rate_txt}"
        frac = min(1.0, self.count / self.total)
        filled = int(frac * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        eta = (self.total - self.count) / rate if rate > 0 and self.count < self.total else 0.0
        return (
            f"{prefix}[{bar}] {frac * 100:5.1f}% {self._fmt_count(self.count)}/{self._fmt_count(self.total)} "
            f"{human_seconds(elapsed)} eta {human_seconds(eta)} {rate_txt}"
        )

    def update(self, n: int = 1) -> None:
        """Advance by ``n`` units and redraw if due."""
        self.count += n
        if not self.enabled or self._closed:
            return
        if self.interactive:
            now = self._clock()
            if now - self._last_draw >= self.min_interval:
                self._last_draw = now
                self.stream.write("\r" + self.render())
                self.stream.flush()
        elif self.total:
            pct = self.count * 100 / self.total
            if pct >= self._next_pct and pct < 100:
                self.stream.write(self.render() + "\n")
                self.stream.flush()
                while self._next_pct <= pct:
                    self._next_pct += self.log_every

    def close(self, failed: bool = False) -> None:
        """Draw the final state once and end the line; idempotent."""
        if self._closed:
            return
        self._closed = True
        if not self.enabled:
            return
        line = self.render() + (" FAILED" if failed else "")
        self.stream.write(("\r" + line if self.interactive else line) + "\n")
        self.stream.flush()


def track(items: Iterable[T], total: int | None = None, label: str = "", **kwargs: Any) -> Iterator[T]:
    """Yield from ``items`` while advancing a ``ProgressBar`` (total from ``len(items)`` when possible)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with ProgressBar(total, label, **kwargs) as bar:
        for item in items:
            yield item
            bar.update()
