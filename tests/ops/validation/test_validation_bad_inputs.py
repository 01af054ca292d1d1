"""Every kind of bad batch is rejected with a reason naming the failed check, quarantined byte for byte,
an alert is written, and the validated store (and its index) stay unchanged."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.ops.validation.helpers import land, store_snapshot, task_text


def _rows(text: str) -> tuple[str, list[list[str]]]:
    lines = text.splitlines()
    return lines[0], [line.split(",") for line in lines[1:]]


def _join(header: str, rows: list[list[str]]) -> str:
    return "\n".join([header, *(",".join(r) for r in rows)]) + "\n"


def _set_cell(text: str, row: int, col: int, value: str) -> str:
    header, rows = _rows(text)
    rows[row][col] = value
    return _join(header, rows)


def _drop_column(text: str, col: int) -> str:
    return (
        "\n".join(
            ",".join(c for i, c in enumerate(line.split(",")) if i != col) for line in text.splitlines()
        )
        + "\n"
    )


def _add_column(text: str) -> str:
    lines = text.splitlines()
    return "\n".join([lines[0] + ",extra", *(line + ",1" for line in lines[1:])]) + "\n"


def _single_class(text: str) -> str:
    header, rows = _rows(text)
    return _join(header, [r for r in rows if r[64] == "0"])


def _duplicate_flood(text: str) -> str:
    header, rows = _rows(text)
    return _join(header, rows + [rows[0]] * 200)


def _in_batch_leak(text: str) -> str:
    header, rows = _rows(text)
    test_row = next(r for r in rows if r[65] == "test")
    return _join(header, [*rows, [*test_row[:65], "train"]])


CASES: dict[str, tuple[Callable[[str], str | bytes], str, str]] = {
    # name: (build the file from task_0's text, failed check that must be named, stage)
    "empty_file": (lambda t: b"", "precheck.empty_file", "precheck"),
    "header_only": (
        lambda t: t.splitlines()[0] + "\n",
        "expect_table_row_count_to_be_between",
        "expectations",
    ),
    "truncated": (lambda t: t[: len(t) // 2], "precheck.csv_structure", "precheck"),
    "garbled": (
        lambda t: t.replace("\n", '\n"unterminated,\x1b[0m\n', 1),
        "precheck.csv_structure",
        "precheck",
    ),
    "non_utf8": (lambda t: t.encode().replace(b"\n0,", b"\n\xff\xfe,", 1), "precheck.encoding", "precheck"),
    "missing_column": (
        lambda t: _drop_column(t, 5),
        "expect_table_columns_to_match_ordered_list",
        "expectations",
    ),
    "extra_column": (_add_column, "expect_table_columns_to_match_ordered_list", "expectations"),
    "wrong_dtype": (
        lambda t: _set_cell(t, 3, 3, "abc"),
        "expect_column_values_to_be_of_type",
        "expectations",
    ),
    "nan": (lambda t: _set_cell(t, 4, 10, "NaN"), "expect_column_values_to_not_be_null", "expectations"),
    "out_of_range": (
        lambda t: _set_cell(t, 5, 20, "17"),
        "expect_column_values_to_be_between",
        "expectations",
    ),
    "label_outside_task": (
        lambda t: _set_cell(t, 6, 64, "5"),
        "expect_column_values_to_be_in_set",
        "expectations",
    ),
    "single_class": (_single_class, "expect_column_distinct_values_to_contain_set", "expectations"),
    "duplicate_flood": (_duplicate_flood, "expect_compound_columns_to_be_unique", "expectations"),
    "leak_within_batch": (
        _in_batch_leak,
        "expect_table_train_rows_to_be_disjoint_from_test_rows",
        "expectations",
    ),
}
COLUMN_OF = {"wrong_dtype": "f3", "nan": "f10", "out_of_range": "f20", "label_outside_task": "label"}


def _assert_rejected(
    settings, result, landed: Path, original: bytes, check: str, stage: str, before: dict
) -> dict:
    """The common contract of a rejection; returns the report."""
    from model.fsio import sha256_file

    assert result.status == "rejected", result
    assert result.stage == stage
    assert check in result.failed_checks and check.removeprefix("precheck.") in result.reason
    assert not landed.exists(), "a rejected local file is moved out of the landing zone"
    quarantined = Path(result.path)
    assert quarantined.read_bytes() == original and sha256_file(quarantined) == result.checksum
    report = json.loads(Path(result.report_path).read_text())
    assert Path(result.report_path).parent == quarantined.parent
    assert check in report["failed_checks"] and report["check"] == report["failed_checks"][0]
    assert report["sha256"] == result.checksum and report["status"] == "rejected"
    assert report["result"]["success"] is False
    assert store_snapshot(settings.validated_dir) == before, "the validated store must not change"
    index = json.loads((settings.quarantine_dir / "index.json").read_text())
    assert (
        index["entries"][-1]["sha256"] == result.checksum and index["entries"][-1]["check"] == report["check"]
    )
    alert = json.loads((settings.log_dir / "data_validation.log").read_text().splitlines()[-1])
    assert (
        alert["level"] == "ERROR"
        and alert["alert"] == "DataValidationFailed"
        and check in alert["failed_checks"]
    )
    return report


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_batch_is_rejected_and_quarantined(case, val_env, split_digits):
    from include.ops.validation.pipeline import validate_landed_file

    settings = val_env
    build, check, stage = CASES[case]
    data = build(task_text(split_digits, 0))
    original = data.encode() if isinstance(data, str) else data
    landed = land(settings, "task_0.csv", original)
    before = store_snapshot(settings.validated_dir)

    result = validate_landed_file(landed, manifest_path=settings.landing_dir / "manifest.json")

    _assert_rejected(settings, result, landed, original, check, stage, before)
    if case in COLUMN_OF:
        assert f"[{COLUMN_OF[case]}" in result.reason or f", {COLUMN_OF[case]}" in result.reason


def test_over_size_limit_is_rejected_before_reading(val_env, split_digits, monkeypatch):
    from include.ops.validation.pipeline import validate_landed_file

    monkeypatch.setenv("CT_VALIDATION_MAX_BYTES", "1000")
    original = task_text(split_digits, 0).encode()
    landed = land(val_env, "task_0.csv", original)
    result = validate_landed_file(landed, manifest_path=val_env.landing_dir / "manifest.json")
    report = _assert_rejected(val_env, result, landed, original, "precheck.size_limit", "precheck", {})
    assert "over the limit of 1000" in report["reason"]


@pytest.mark.parametrize(
    ("name", "check"),
    [
        ("../../etc/task_0.csv", "precheck.file_name"),
        ("..task_0.csv", "precheck.file_name"),
        ("task 0;rm -rf.csv", "precheck.file_name"),
        ("task_9.csv", "precheck.manifest_match"),
        ("task_0.txt", "precheck.file_name"),
    ],
)
def test_bad_file_name_is_rejected(name, check, val_env, split_digits):
    from include.ops.validation.pipeline import validate_landed_file

    original = task_text(split_digits, 0).encode()
    landed = land(val_env, "incoming.bin", original)
    result = validate_landed_file(landed, name=name, manifest_path=val_env.landing_dir / "manifest.json")
    _assert_rejected(val_env, result, landed, original, check, "precheck", {})
    quarantined = Path(result.path)
    assert quarantined.is_relative_to(val_env.quarantine_dir) and ".." not in quarantined.name
    assert json.loads(Path(result.report_path).read_text())["name"] == name


def test_leaked_test_rows_of_a_validated_task_are_rejected(val_env, split_digits):
    """task_1 whose train rows copy task_0's test rows (relabelled) leaks; task_0 is validated first."""
    from include.ops.validation.pipeline import validate_landed_file

    settings = val_env
    manifest = settings.landing_dir / "manifest.json"
    first = validate_landed_file(
        land(settings, "task_0.csv", task_text(split_digits, 0)), manifest_path=manifest
    )
    assert first.status == "validated"
    before = store_snapshot(settings.validated_dir)

    _, rows0 = _rows(task_text(split_digits, 0))
    header, rows1 = _rows(task_text(split_digits, 1))
    stolen = [[*r[:64], "2", "train"] for r in rows0 if r[65] == "test"][:3]
    original = _join(header, rows1 + stolen).encode()
    landed = land(settings, "task_1.csv", original)
    result = validate_landed_file(landed, manifest_path=manifest)

    report = _assert_rejected(
        settings,
        result,
        landed,
        original,
        "expect_table_train_rows_to_be_disjoint_from_test_rows",
        "expectations",
        before,
    )
    leak = next(
        r
        for r in report["result"]["results"]
        if r["expectation_config"]["type"].startswith("expect_table_train_rows")
    )
    assert leak["result"]["observed_value"] == 3
    assert leak["result"]["details"]["by_reference"] == {"task_0.csv": 3}
    assert leak["result"]["details"]["sample_lines"] == [len(rows1) + 2, len(rows1) + 3, len(rows1) + 4]
