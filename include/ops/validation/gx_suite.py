"""Run the committed expectation suite on one batch in an ephemeral GX context (nothing written to the project).

The suite JSON is read from the committed GX project, loaded into a fresh in-memory context per call, its
parameters (``task_classes``, ``validated_dir``, ``file_name``) filled from the manifest at run time and the
class-balance ones (``min_classes_per_task``, ``max_class_share``) from the settings, and run
by a Checkpoint. Data docs, when asked for, are built into their own folder under the git-ignored
``great_expectations/uncommitted/data_docs`` (env ``CT_GX_DATA_DOCS_DIR``) and moved into place atomically.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from include.ops.validation.config import SUITE_NAME, ValidationConfig

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)
os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # before great_expectations is first imported
# GX logs every default-kwarg lookup at INFO; its warnings and errors still get through
logging.getLogger("great_expectations").setLevel(logging.WARNING)
SHARED_STATIC = "_static"  # data docs' 4 MB of fonts and styles, shared by every site folder
MAX_LISTED_COLUMNS = 5


class SuiteError(RuntimeError):
    """The committed suite cannot be loaded (missing, not JSON, or an expectation GX rejects)."""


@dataclass
class SuiteOutcome:
    """Result of the suite on one batch: success, failed expectations, GX's result JSON, data docs page."""

    success: bool
    failed: list[dict[str, Any]]
    result: dict[str, Any]
    statistics: dict[str, Any]
    data_docs: str | None = None
    observed: dict[str, Any] = field(default_factory=dict)

    @property
    def failed_types(self) -> list[str]:
        """Distinct failed expectation types in suite order."""
        return list(dict.fromkeys(f["type"] for f in self.failed))

    def reason(self) -> str:
        """One line naming every failed expectation type and the columns it failed on."""
        columns: dict[str, list[str]] = {}
        for failure in self.failed:
            columns.setdefault(failure["type"], [])
            if failure.get("column"):
                columns[failure["type"]].append(failure["column"])
        parts = []
        for kind, cols in columns.items():
            if cols:
                shown = ", ".join(cols[:MAX_LISTED_COLUMNS])
                more = f", +{len(cols) - MAX_LISTED_COLUMNS} more" if len(cols) > MAX_LISTED_COLUMNS else ""
                parts.append(f"{kind} [{shown}{more}]")
            else:
                parts.append(kind)
        return "failed expectations: " + "; ".join(parts)


def read_suite_json(path: Path) -> dict[str, Any]:
    """The committed suite as a dict; SuiteError naming the file if it is missing or not a GX suite."""
    try:
        raw = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise SuiteError(f"cannot read expectation suite {path}: {exc}") from exc
    if (
        not isinstance(raw, dict)
        or raw.get("name") != SUITE_NAME
        or not isinstance(raw.get("expectations"), list)
    ):
        raise SuiteError(f"{path} is not the {SUITE_NAME!r} expectation suite (name + expectations list)")
    return raw


def load_suite(path: Path):
    """Build an ExpectationSuite from the committed JSON; SuiteError if GX drops or rejects any expectation."""
    from great_expectations.core.expectation_suite import ExpectationSuite

    import include.ops.validation.expectations  # noqa: F401  (registers the custom expectations)

    raw = read_suite_json(path)
    kwargs = {k: raw[k] for k in ("name", "expectations", "meta", "notes", "id") if k in raw}
    suite = ExpectationSuite(**kwargs)
    if len(suite.expectations) != len(raw["expectations"]):
        # GX logs and skips invalid expectations; a silently shorter suite would validate less than committed
        raise SuiteError(
            f"{path}: GX accepted {len(suite.expectations)} of {len(raw['expectations'])} expectations; "
            "an expectation type or its kwargs are invalid (see the GX error logged above)"
        )
    return suite


def _context(docs_dir: Path | None):
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    sites = {}
    if docs_dir is not None:
        sites["local_site"] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
        progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites=sites,
        analytics_enabled=False,
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _short(value: Any, limit: int = 300) -> Any:
    text = json.dumps(value, default=str)
    return value if len(text) <= limit else text[:limit] + "..."


def _failures(result: dict[str, Any], order: dict[str, int]) -> list[dict[str, Any]]:
    """Failed expectations in suite order (GX reports results grouped by metric, not as committed)."""
    failed = []
    for item in result.get("results", []):
        if item.get("success"):
            continue
        config = item.get("expectation_config") or {}
        res = item.get("result") or {}
        exc = item.get("exception_info") or {}
        failed.append(
            {
                "type": config.get("type"),
                "column": (config.get("kwargs") or {}).get("column"),
                "check": (config.get("meta") or {}).get("check"),
                "observed": _short(res.get("observed_value", res.get("partial_unexpected_list"))),
                "unexpected_percent": res.get("unexpected_percent"),
                "error": (exc.get("exception_message") or None) if exc.get("raised_exception") else None,
                "position": order.get(str(config.get("id")), len(order)),
            }
        )
    return sorted(failed, key=lambda f: f["position"])


def _observed(result: dict[str, Any]) -> dict[str, Any]:
    """The few observed values worth carrying in the batch summary (duplicates, leakage, class share)."""
    out: dict[str, Any] = {}
    for item in result.get("results", []):
        config = item.get("expectation_config") or {}
        res = item.get("result") or {}
        kind = config.get("type")
        if kind == "expect_compound_columns_to_be_unique":
            out["duplicate_rows"] = res.get("unexpected_count")
        elif kind == "expect_table_train_rows_to_be_disjoint_from_test_rows":
            out["leaked_rows"] = res.get("observed_value")
            out["leakage_references"] = (res.get("details") or {}).get("references", [])
        elif kind == "expect_column_max_value_share_to_be_between":
            out["max_class_share"] = res.get("observed_value")
    return out


def _publish_docs(tmp_site: Path, docs_root: Path, name: str) -> Path:
    """Move a freshly built site into ``docs_root/name`` with its static assets shared; return index.html."""
    static, shared = tmp_site / "static", docs_root / SHARED_STATIC
    if static.is_dir():
        if not shared.exists():
            try:
                static.rename(shared)
            except OSError:  # another validation published it first
                shutil.rmtree(static)
        else:
            shutil.rmtree(static)
        (tmp_site / "static").symlink_to(Path("..") / SHARED_STATIC)
    final = docs_root / name
    tmp_site.rename(final)
    return final / "index.html"


def balance_parameters(config: ValidationConfig, task_classes: list[int]) -> dict[str, float | int]:
    """The class-balance suite parameters; a batch of k classes is held to a share of at most max(bound, 1/k)."""
    share = max(config.max_class_share, 1.0 / max(1, len(set(task_classes))))
    return {"min_classes_per_task": config.min_classes_per_task, "max_class_share": share}


def run_suite(
    frame: pd.DataFrame,
    *,
    file_name: str,
    task_classes: list[int],
    validated_dir: Path,
    config: ValidationConfig,
    docs_name: str | None = None,
) -> SuiteOutcome:
    """Validate ``frame`` (one batch) against the committed suite; data docs only when ``docs_name`` is given."""
    import great_expectations as gx

    suite = load_suite(config.suite_path)
    docs_tmp: Path | None = None
    if docs_name is not None:
        config.data_docs_dir.mkdir(parents=True, exist_ok=True)
        docs_tmp = Path(tempfile.mkdtemp(dir=config.data_docs_dir, prefix=f".{docs_name}.", suffix=".tmp"))
    try:
        context = _context(docs_tmp)
        suite = context.suites.add(suite)
        batch_def = (
            context.data_sources.add_pandas("landing")
            .add_dataframe_asset(file_name)
            .add_batch_definition_whole_dataframe("whole_file")
        )
        parameters = {
            "task_classes": [int(c) for c in task_classes],
            "validated_dir": str(validated_dir),
            "file_name": file_name,
            **balance_parameters(config, task_classes),
        }
        if docs_tmp is None:
            # no Checkpoint without data docs: its freshness checks cost ~20 % of a validation
            batch = batch_def.get_batch(batch_parameters={"dataframe": frame})
            result = batch.validate(
                suite, expectation_parameters=parameters, result_format="SUMMARY"
            ).to_json_dict()
        else:
            definition = context.validation_definitions.add(
                gx.ValidationDefinition(name=f"{SUITE_NAME}:{file_name}", data=batch_def, suite=suite)
            )
            checkpoint = context.checkpoints.add(
                gx.Checkpoint(
                    name="validate_task_batch",
                    validation_definitions=[definition],
                    actions=[gx.checkpoint.UpdateDataDocsAction(name="data_docs")],
                    result_format="SUMMARY",
                )
            )
            run = checkpoint.run(batch_parameters={"dataframe": frame}, expectation_parameters=parameters)
            result = next(iter(run.run_results.values())).to_json_dict()
        index = _publish_docs(docs_tmp, config.data_docs_dir, docs_name) if docs_tmp is not None else None
        docs_tmp = None
    finally:
        if docs_tmp is not None and docs_tmp.exists():
            shutil.rmtree(docs_tmp, ignore_errors=True)
    return SuiteOutcome(
        success=bool(result.get("success")),
        failed=_failures(result, {str(e.id): i for i, e in enumerate(suite.expectations)}),
        result=result,
        statistics=result.get("statistics", {}),
        data_docs=str(index) if index is not None else None,
        observed=_observed(result),
    )


def docs_folder_name(file_name: str, checksum: str) -> str:
    """A unique data docs folder for one validation of ``file_name`` with content ``checksum``."""
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    stem = Path(file_name).stem or "batch"
    return f"{stem}-{checksum[:12]}-{stamp}-{secrets.token_hex(2)}"
