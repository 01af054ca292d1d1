"""Data-quality analysis: class counts, feature stats and drift per task; JSON + PNG; the script CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.paths import ROOT


def test_drift_scores_separate_same_from_shifted():
    from include.ops.data_quality import drift_scores, ks_statistic, psi

    rng = np.random.default_rng(0)
    a = rng.integers(0, 17, size=(2000, 4)).astype(float)
    b = rng.integers(0, 17, size=(2000, 4)).astype(float)
    same = drift_scores(a, b)
    shifted = drift_scores(np.clip(a + 6, 0, 16), b)
    assert same["psi_mean"] < 0.05 and same["ks_mean"] < 0.06
    assert shifted["psi_mean"] > 1.0 and shifted["ks_mean"] > 0.3
    assert psi(np.zeros(50), np.zeros(70)) == pytest.approx(0.0)
    assert ks_statistic(np.zeros(5), np.ones(5)) == 1.0


def test_analyze_split_digits(split_digits, tmp_path):
    from include.ops.data_quality import analyze, format_table

    stream = tmp_path / "stream"
    shutil.copytree(split_digits.parent, stream)
    # task_4 replaced by a copy of task_0's pixels: no drift against the earlier tasks that include task_0
    lines = (stream / "task_0.csv").read_text().splitlines()
    relabel = {"0": "8", "1": "9"}
    rows = [",".join([*r.split(",")[:64], relabel[r.split(",")[64]], r.split(",")[65]]) for r in lines[1:]]
    (stream / "task_4.csv").write_text("\n".join([lines[0], *rows]) + "\n")
    (stream / "task_3.csv").unlink()  # listed in the manifest, not present

    report = analyze(stream / "manifest.json", tmp_path / "out")

    assert json.loads(json.dumps(report)) == report
    assert Path(report["json_path"]).is_file() and json.loads(Path(report["json_path"]).read_text()) == report
    assert Path(report["png_path"]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    tasks = {t["task_id"]: t for t in report["tasks"]}
    assert tasks["task_0"]["class_counts"] == {"0": 178, "1": 182} and tasks["task_0"]["drift"] is None
    assert (
        tasks["task_0"]["rows"] == 360 and tasks["task_0"]["train_rows"] + tasks["task_0"]["test_rows"] == 360
    )
    assert len(tasks["task_0"]["feature_mean"]) == 64 and len(tasks["task_0"]["feature_std"]) == 64
    assert tasks["task_3"]["present"] is False
    assert tasks["task_2"]["drift"]["reference_tasks"] == ["task_0", "task_1"]
    assert tasks["task_1"]["drift"]["psi_mean"] > 0.25  # new digits: a large, expected shift
    # task_4 has task_0's pixels: its drift vs (task_0, task_1, task_2) is far below a real new task's
    assert tasks["task_4"]["drift"]["psi_mean"] < tasks["task_2"]["drift"]["psi_mean"] / 2
    table = format_table(report)
    assert "task_3     (file not present" in table and "0:178 1:182" in table


def test_script_writes_reports(split_digits, tmp_path, capsys):
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "analyze_data_quality", ROOT / "scripts" / "analyze_data_quality.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.main(["--manifest", str(split_digits), "--out", str(tmp_path / "dq")]) == 0
    out = capsys.readouterr().out
    assert "Data quality of split_digits" in out and "task_4" in out
    assert (tmp_path / "dq" / "data_quality.json").is_file() and (
        tmp_path / "dq" / "data_quality.png"
    ).is_file()
    assert module.main(["--manifest", str(tmp_path / "missing.json"), "--out", str(tmp_path / "dq2")]) == 2
