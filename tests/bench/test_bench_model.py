"""The continual and throughput benchmarks run in quick mode and write every field."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.paths import ROOT

CONTINUAL_FIELDS = {
    "stream",
    "scenario",
    "strategy",
    "seeds",
    "acc_matrix",
    "final_avg_acc",
    "mean_retention",
    "min_retention",
    "min_new_task_acc",
    "mean_retention_chance_corrected",
    "bwt",
    "params_before",
    "params_after",
    "strategy_memory_bytes",
    "stored_exemplars",
}


def _run(module: str, out: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", module, "--quick", "--out", str(out)], cwd=ROOT, check=True, timeout=900
    )


def test_continual_bench_quick(tmp_path: Path):
    out = tmp_path / "continual.json"
    _run("bench.bench_continual", out)
    rows = json.loads(out.read_text())
    combos = {(r["stream"], r["scenario"], r["strategy"]) for r in rows}
    for scenario in ("class_incremental", "task_incremental"):
        assert {("split_digits", scenario, s) for s in ("naive", "joint", "replay", "lwf", "ewc")} <= combos
    for stream in ("digits_pairs_0_5_seed1", "digits_3_tasks"):  # the other two streams
        assert {(stream, "class_incremental", s) for s in ("joint", "naive", "replay", "analytic")} <= combos
    for row in rows:
        assert set(row) >= CONTINUAL_FIELDS, set(CONTINUAL_FIELDS) - set(row)
        assert row["params_after"] == row["params_before"] < 100_000
        assert 0.0 <= row["final_avg_acc"] <= 1.0
        assert len(row["acc_matrix"]) == len(row["acc_matrix"][0]) == 2
        if row["strategy"] != "joint":
            assert 0.0 <= row["min_retention"] <= row["mean_retention"] <= 1.0
            assert 0.0 <= row["min_new_task_acc"] <= 1.0
    replay = next(r for r in rows if r["strategy"] == "replay")
    assert 0 < replay["stored_exemplars"] <= 100 and replay["strategy_memory_bytes"] > 0


def test_train_throughput_bench_quick(tmp_path: Path):
    out = tmp_path / "train_throughput.json"
    _run("bench.bench_train_throughput", out)
    result = json.loads(out.read_text())
    assert result["project_samples_per_second"] > 0 and result["bare_samples_per_second"] > 0
    assert (
        abs(result["ratio"] - result["project_samples_per_second"] / result["bare_samples_per_second"]) < 1e-9
    )
