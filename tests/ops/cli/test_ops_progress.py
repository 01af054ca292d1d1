"""``include.ops.progress``: what the bar prints on a terminal and in logs."""

from __future__ import annotations

import io

import pytest

from include.ops.progress import ProgressBar, human_bytes, human_seconds, track


class FakeClock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_human_units() -> None:
    assert human_bytes(0) == "0 B"
    assert human_bytes(1023) == "1023 B"
    assert human_bytes(1536) == "1.5 KiB"
    assert human_bytes(5 * 1024**3) == "5.0 GiB"
    assert human_seconds(75) == "1:15"
    assert human_seconds(3700) == "1:01:40"


def test_log_mode_prints_milestones_and_final_line() -> None:
    clock, out = FakeClock(), io.StringIO()
    bar = ProgressBar(8, "copy", unit="B", stream=out, clock=clock, width=8)
    for _ in range(8):
        clock.t += 1
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue()
    assert len(lines) == 4  # 25%, 50%, 75%, then the final 100% line
    assert lines[0].startswith("copy [##------]  25.0% 2 B/8 B 0:02 eta 0:06 1 B/s")
    assert lines[-1].startswith("copy [########] 100.0% 8 B/8 B 0:08 eta 0:00")


def test_tty_mode_redraws_in_place_throttled() -> None:
    clock, out = FakeClock(), Tty()
    with ProgressBar(100, "x", stream=out, clock=clock, min_interval=1.0) as bar:
        for _ in range(10):
            clock.t += 0.25
            bar.update(10)
    text = out.getvalue()
    assert text.count("\r") == 3 + 1  # redraws at 0.25 s, 1.25 s, 2.25 s, then the final one
    assert text.endswith("100.0% 100/100 0:02 eta 0:00 40.0/s\n")


def test_unknown_total_failure_and_disabled() -> None:
    clock, out = FakeClock(), io.StringIO()
    with pytest.raises(RuntimeError), ProgressBar(None, "scan", stream=out, clock=clock) as bar:
        bar.update(5)
        raise RuntimeError("boom")
    assert out.getvalue() == "scan 5 0:00 0.0/s FAILED\n"
    silent = io.StringIO()
    with ProgressBar(3, stream=silent, enabled=False) as bar:
        bar.update(3)
    assert silent.getvalue() == ""
    with pytest.raises(ValueError):
        ProgressBar(-1)


def test_track_yields_everything_and_an_early_stop_is_not_a_failure() -> None:
    out = io.StringIO()
    assert list(track([1, 2, 3], label="t", stream=out)) == [1, 2, 3]
    assert out.getvalue().splitlines()[-1].startswith("t [")
    out2 = io.StringIO()
    for item in track(range(10), label="early", stream=out2):
        if item == 2:
            break
    assert "FAILED" not in out2.getvalue()
