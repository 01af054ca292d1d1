"""The committed GX project: the suite is a real GX 1.x suite that covers every required check."""

from __future__ import annotations

import json
import shutil

from tests.paths import ROOT

SUITE = ROOT / "great_expectations" / "expectations" / "task_batch.json"


def test_suite_covers_every_check():
    raw = json.loads(SUITE.read_text())
    by_check: dict[str, set[str]] = {}
    for exp in raw["expectations"]:
        by_check.setdefault(exp["meta"]["check"], set()).add(exp["type"])
    assert set(by_check) == {
        "schema",
        "completeness",
        "range",
        "labels",
        "split",
        "volume",
        "balance",
        "duplicates",
        "leakage",
    }
    types = {e["type"] for e in raw["expectations"]}
    assert {
        "expect_table_columns_to_match_ordered_list",
        "expect_column_values_to_be_of_type",
        "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_between",
        "expect_column_values_to_be_in_set",
        "expect_column_distinct_values_to_contain_set",
        "expect_table_row_count_to_be_between",
        "expect_column_max_value_share_to_be_between",
        "expect_compound_columns_to_be_unique",
        "expect_table_train_rows_to_be_disjoint_from_test_rows",
    } <= types
    columns = [f"f{i}" for i in range(64)] + ["label", "split"]
    per_column = {e["kwargs"].get("column") for e in raw["expectations"] if e["type"].endswith("not_be_null")}
    assert per_column == set(columns)
    label_sets = [
        e["kwargs"]["value_set"]
        for e in raw["expectations"]
        if e["kwargs"].get("column") == "label" and "value_set" in e["kwargs"]
    ]
    assert label_sets == [{"$PARAMETER": "task_classes"}] * 2  # filled from the manifest at run time


def test_gx_loads_every_expectation():
    from include.ops.validation.gx_suite import load_suite

    suite = load_suite(SUITE)
    assert len(suite.expectations) == len(json.loads(SUITE.read_text())["expectations"])


def test_committed_project_opens_as_a_gx_file_context(tmp_path):
    """Opened by hand (on a copy: file mode writes store ids), GX reads the same suite from its store."""
    import great_expectations as gx

    import include.ops.validation.expectations  # noqa: F401

    copy = tmp_path / "great_expectations"
    shutil.copytree(ROOT / "great_expectations", copy, ignore=shutil.ignore_patterns("uncommitted"))
    context = gx.get_context(context_root_dir=str(copy))
    suite = context.suites.get("task_batch")
    assert len(suite.expectations) == len(json.loads(SUITE.read_text())["expectations"])
