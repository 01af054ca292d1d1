"""`python -m bench.bench_validation --quick` runs in seconds and writes the benchmark record."""

from __future__ import annotations

import json


def test_quick_benchmark_writes_record(tmp_path):
    from bench.bench_validation import main

    out = tmp_path / "validation.json"
    assert main(["--quick", "--out", str(out)]) == 0
    record = json.loads(out.read_text())
    assert {"rows", "seconds", "rows_per_second", "seconds_per_100k_rows"} <= set(record)
    assert record["quick"] is True and 4_000 < record["rows"] <= 5_000
    assert record["seconds"] > 0
    assert (
        record["rows_per_second"] == round(record["rows"] / record["seconds"], 1)
        or abs(record["rows_per_second"] - record["rows"] / record["seconds"]) < 1
    )
    assert abs(record["seconds_per_100k_rows"] - record["seconds"] * 100_000 / record["rows"]) < 0.01
    assert record["expectations"] >= 200
