"""The DAG parse benchmark runs in quick mode and writes every field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.paths import ROOT


def test_dag_parse_bench_quick(tmp_path: Path):
    out = tmp_path / "dag_parse.json"
    subprocess.run(
        [sys.executable, "-m", "bench.bench_dag_parse", "--quick", "--out", str(out)], cwd=ROOT, check=True
    )
    report = json.loads(out.read_text())
    names = {row["file"] for row in report["files"]}
    assert "continual_training.py" in names
    for row in report["files"]:
        assert row["import_errors"] == 0
        assert row["median_seconds"] > 0
        assert set(row) >= {"file", "dags", "repeats", "median_seconds", "max_seconds"}
