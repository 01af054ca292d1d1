"""``python -m include.ops.cli``: tables, colours, exit codes and export against a real MLflow store."""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from include.ops import cli
from include.ops.settings import RETENTION_THRESHOLD
from tests.paths import ROOT

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    code = cli.main(argv, stdout=out)
    return code, out.getvalue()


def test_status_plain_text(seeded_env: dict[str, Any]) -> None:
    code, text = run(["status", "--no-color"])
    assert code == 0
    assert not ANSI.search(text)
    assert "learned:    3 task(s) task_0, task_1, task_2" in text
    assert f"champion:   v{seeded_env['versions'][1]} (task_1)" in text
    assert f"challenger: v{seeded_env['versions'][2]} (task_2)" in text
    lines = text.splitlines()
    assert re.search(r"^after task_2\s+0\.60\s+0\.85\s+0\.98$", text, re.M), text
    assert re.search(r"^after task_0\s+0\.99\s+-\s+-$", text, re.M)
    assert any(re.fullmatch(r"task_0\s+0\.606\s+BELOW", ln) for ln in lines)
    assert any(re.fullmatch(r"task_1\s+0\.876\s+ok", ln) for ln in lines)
    assert any(re.fullmatch(r"mean\s+0\.827\s+ok", ln) for ln in lines)


def test_status_colours_follow_the_threshold(seeded_env: dict[str, Any]) -> None:
    _, text = run(["status", "--color"])
    assert f"{cli.RED}    0.606  BELOW{cli.RESET}" in text
    assert f"{cli.GREEN}    0.876  ok{cli.RESET}" in text
    assert f"{cli.RED}  0.60{cli.RESET}" in text  # matrix cell below the default threshold
    assert f"{cli.GREEN}  0.98{cli.RESET}" in text
    # the same report with colour stripped is exactly the plain one
    _, plain = run(["status", "--no-color"])
    assert ANSI.sub("", text) == plain


def test_threshold_and_check_exit_code(seeded_env: dict[str, Any]) -> None:
    assert run(["status", "--check", "--no-color"])[0] == 1  # task_0 retention 0.606 < the default
    code, text = run(["status", "--check", "--no-color", "--threshold", "0.5"])
    assert code == 0
    assert "threshold 0.50" in text and "BELOW" not in text


def test_threshold_comes_from_settings_and_the_flag_wins(
    seeded_env: dict[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert f"threshold {RETENTION_THRESHOLD:.2f}" in run(["status", "--no-color"])[1]
    monkeypatch.setenv("CT_RETENTION_THRESHOLD", "0.55")
    code, text = run(["status", "--check", "--no-color"])
    assert code == 0 and "threshold 0.55" in text and "BELOW" not in text
    assert run(["status", "--check", "--no-color", "--threshold", "0.7"])[0] == 1
    monkeypatch.setenv("CT_RETENTION_THRESHOLD", "1.5")
    assert run(["status"])[0] == 2, "an out-of-range threshold is refused, not silently replaced"


def test_status_json_is_the_state(seeded_env: dict[str, Any]) -> None:
    code, text = run(["status", "--json"])
    state = json.loads(text)
    assert code == 0
    assert state["acc_matrix"]["task_ids"] == ["task_0", "task_1", "task_2"]
    assert state["champion"]["run_id"] == seeded_env["run_ids"][1]


def test_history_table(seeded_env: dict[str, Any]) -> None:
    code, text = run(["history", "--no-color"])
    assert code == 0
    rows = text.splitlines()[1:]
    assert [r.split()[1] for r in rows] == ["task_0", "task_1", "task_2"]
    assert rows[1].endswith("champion") and rows[2].endswith("challenger")
    assert rows[0].split()[2] == seeded_env["run_ids"][0][:8]
    _, last = run(["history", "--no-color", "--limit", "1"])
    assert len(last.splitlines()) == 2 and "task_2" in last


def test_empty_store(ct_env: Path) -> None:
    code, text = run(["status", "--no-color"])
    assert code == 0
    assert "learned:    0 task(s)" in text and "champion:   not set" in text
    assert "(no accuracy matrix logged for the latest run)" in text
    assert run(["history"])[1] == "(nothing learned yet)\n"


def test_unreadable_store_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _ = run(["--tracking-uri", "http://127.0.0.1:9/", "status"])
    assert code == 2
    assert "error: status:" in capsys.readouterr().err


def test_export_writes_every_run_with_a_progress_bar(
    seeded_env: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "export"
    code, text = run(["export", "--out", str(out)])
    assert code == 0 and str(out) in text
    runs = sorted(p.name for p in (out / "runs").iterdir())
    assert [r.split("_", 1)[1][:6] for r in runs] == ["task_0", "task_1", "task_2"]
    for r in runs:
        assert json.loads((out / "runs" / r / "acc_matrix.json").read_text())["task_ids"]
        assert (out / "runs" / r / "acc_matrix.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads((out / "state.json").read_text())["tasks_learned"] == 3
    err = capsys.readouterr().err
    assert "export runs [" in err and "100.0% 3 runs/3 runs" in err


def test_module_entry_point_in_a_subprocess(seeded_env: dict[str, Any]) -> None:
    """What `make status` runs: a real process, colour off when stdout is not a TTY."""
    proc = subprocess.run(
        [sys.executable, "-m", "include.ops.cli", "status"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "after task_2" in proc.stdout and not ANSI.search(proc.stdout)
