"""Custom Great Expectations for task batches, where GX 1.x has no built-in equivalent.

Importing this module registers the metrics and expectations with GX; suite JSON refers to them by type:

- ``expect_column_max_value_share_to_be_between``: the most frequent value of a column (a class) holds at
  most ``max_value`` of the non-null rows (class balance).
- ``expect_table_train_rows_to_be_disjoint_from_test_rows``: no train row equals a test row of this batch or
  of any validated task, and no test row equals a validated train row (leakage); see ``leakage.py``.
"""

from __future__ import annotations

from typing import Any, ClassVar

from great_expectations.core.suite_parameters import SuiteParameterDict
from great_expectations.execution_engine import PandasExecutionEngine
from great_expectations.expectations.expectation import BatchExpectation, ColumnAggregateExpectation
from great_expectations.expectations.metrics.column_aggregate_metric_provider import (
    ColumnAggregateMetricProvider,
    column_aggregate_value,
)
from great_expectations.expectations.metrics.metric_provider import metric_value
from great_expectations.expectations.metrics.table_metric_provider import TableMetricProvider

from include.ops.validation.leakage import leakage_report, reference_files

MAX_VALUE_SHARE = "column.max_value_share"
TRAIN_TEST_LEAKAGE = "table.train_test_leakage"


class ColumnMaxValueShare(ColumnAggregateMetricProvider):
    """Share of the non-null rows held by the column's most frequent value (None for an empty column)."""

    metric_name = MAX_VALUE_SHARE

    @column_aggregate_value(engine=PandasExecutionEngine)
    def _pandas(cls, column, **kwargs):
        if len(column) == 0:
            return None
        return float(column.value_counts(normalize=True).iloc[0])


class TableTrainTestLeakage(TableMetricProvider):
    """Leakage report of the batch against the validated task files in ``reference_dir``."""

    metric_name = TRAIN_TEST_LEAKAGE
    value_keys = ("reference_dir", "exclude_file", "split_column")

    @metric_value(engine=PandasExecutionEngine)
    def _pandas(
        cls, execution_engine, metric_domain_kwargs, metric_value_kwargs, metrics, runtime_configuration
    ):
        from great_expectations.core.metric_domain_types import MetricDomainTypes

        frame, _, _ = execution_engine.get_compute_domain(
            domain_kwargs=metric_domain_kwargs, domain_type=MetricDomainTypes.TABLE
        )
        refs = reference_files(
            metric_value_kwargs.get("reference_dir"), metric_value_kwargs.get("exclude_file")
        )
        return leakage_report(frame, refs, metric_value_kwargs.get("split_column") or "split")


class ExpectColumnMaxValueShareToBeBetween(ColumnAggregateExpectation):
    """Expect the most frequent value of a column to hold between min_value and max_value of its rows."""

    min_value: float | SuiteParameterDict | None = None
    max_value: float | SuiteParameterDict | None = None
    strict_min: bool = False
    strict_max: bool = False

    metric_dependencies = (MAX_VALUE_SHARE,)
    success_keys = ("min_value", "max_value", "strict_min", "strict_max")
    args_keys = ("column", "min_value", "max_value", "strict_min", "strict_max")
    library_metadata: ClassVar[dict[str, Any]] = {
        "maturity": "production",
        "tags": ["continual-transformer", "class balance"],
        "contributors": ["@continual-transformer"],
    }

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine=None):
        return self._validate_metric_value_between(
            metric_name=MAX_VALUE_SHARE,
            metrics=metrics,
            runtime_configuration=runtime_configuration,
            execution_engine=execution_engine,
        )


class ExpectTableTrainRowsToBeDisjointFromTestRows(BatchExpectation):
    """Expect at most max_leaked_rows rows whose features equal a row of the other split (batch or store)."""

    reference_dir: str | SuiteParameterDict | None = None
    exclude_file: str | SuiteParameterDict | None = None
    split_column: str = "split"
    max_leaked_rows: int = 0

    metric_dependencies = (TRAIN_TEST_LEAKAGE,)
    domain_keys: ClassVar[tuple[str, ...]] = ("batch_id",)
    success_keys = ("reference_dir", "exclude_file", "split_column", "max_leaked_rows")
    args_keys = ("reference_dir", "exclude_file", "split_column", "max_leaked_rows")
    library_metadata: ClassVar[dict[str, Any]] = {
        "maturity": "production",
        "tags": ["continual-transformer", "leakage"],
        "contributors": ["@continual-transformer"],
    }

    def _validate(self, metrics: dict, runtime_configuration: dict | None = None, execution_engine=None):
        report = metrics[TRAIN_TEST_LEAKAGE]
        limit = self._get_success_kwargs().get("max_leaked_rows") or 0
        return {
            "success": report["leaked_rows"] <= limit,
            "result": {"observed_value": report["leaked_rows"], "details": report},
        }
