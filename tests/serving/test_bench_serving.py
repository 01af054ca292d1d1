"""The serving benchmark runs end to end (``--quick``) and writes every field of its result file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.paths import ROOT

FIELDS = ("clients", "p50_ms", "p95_ms", "p99_ms", "throughput_rps", "naive_p95_ms", "naive_throughput_rps",
          "bare_forward_rps", "batching_speedup")  # fmt: skip


def test_bench_serving_quick_writes_the_result_fields(tmp_path: Path):
    out = tmp_path / "serving.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench.bench_serving", "--quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-4000:]
    result = json.loads(out.read_text())
    for field in FIELDS:
        assert isinstance(result[field], int | float) and result[field] > 0, field
    assert result["clients"] == 32 and result["quick"] is True
    assert result["errors"] == 0 and result["naive_errors"] == 0
    assert result["p50_ms"] <= result["p95_ms"] <= result["p99_ms"]
    assert set(result["targets_met"]) == {"p95_ms", "throughput_vs_naive", "batching_speedup",
                                          "predict_to_noop_rps_ratio"}  # fmt: skip
    assert "throughput vs naive" in proc.stdout
    assert [row["clients"] for row in result["rows"]] == [32, 128]
    for row in result["rows"]:
        assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"] and row["throughput_rps"] > 0
        assert row["errors"] == 0 and row["noop_errors"] == 0 and 0.0 <= row["shed_rate"] < 1.0
        assert row["predict_to_noop_rps_ratio"] > 0 and row["noop_throughput_rps"] > 0
    assert result["predict_to_noop_rps_ratio"] == min(r["predict_to_noop_rps_ratio"] for r in result["rows"])
