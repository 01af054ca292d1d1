"""The runbook commands as an operator types them: backup, then a DR drill; bad input refused; the benchmark."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "include.ops.backup.cli", *args],
        cwd=ROOT,
        env=env or dict(os.environ),
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_backup_then_drill_passes_and_bad_ids_are_refused(state):
    env = dict(os.environ)
    backup = _cli("--json", "backup", "--remote", "off", env=env)
    assert backup.returncode == 0, backup.stderr
    result = json.loads(backup.stdout)
    backup_id = result["backup"]["backup_id"]
    assert result["verify"][0]["ok"] is True
    assert "backup state" in backup.stderr  # the progress display

    drill = _cli("drill", env=env)
    assert drill.returncode == 0, drill.stdout + drill.stderr
    assert f"DR drill of backup {backup_id}: PASSED" in drill.stdout

    listing = _cli("list", env=env)
    assert backup_id in listing.stdout and "complete" in listing.stdout

    bad = _cli("restore", "--backup-id", "../../etc", env=env)
    assert bad.returncode == 2 and "invalid backup id" in bad.stderr
    missing = _cli("restore", "--backup-id", "20200101T000000Z", env=env)
    assert missing.returncode == 1 and "no backup 20200101T000000Z" in missing.stderr

    dry = _cli("cleanup", "--dry-run", "--keep", "1", "--remote", "off", env=env)
    assert dry.returncode == 0 and "checkpoints: would remove 1" in dry.stdout
    assert len(list(state.checkpoint_dir.glob("*.pt"))) == 3


def test_benchmark_quick_writes_every_field(tmp_path: Path):
    out = tmp_path / "backup.json"
    env = dict(os.environ, CT_VAR_DIR=str(tmp_path / "var"), MLFLOW_TRACKING_URI="")
    env.pop("MLFLOW_TRACKING_URI")
    subprocess.run(
        [sys.executable, "-m", "bench.bench_backup", "--quick", "--out", str(out)],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        timeout=600,
    )
    record = json.loads(out.read_text())
    for key in ("bytes", "backup_seconds", "copy_seconds", "ratio", "restore_seconds"):
        assert isinstance(record[key], int | float) and record[key] > 0, key
    assert record["ratio"] == pytest.approx(record["copy_seconds"] / record["backup_seconds"], rel=0.02)
    assert record["state"] == "synthetic" and record["quick"] is True
