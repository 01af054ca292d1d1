"""The stages of ``validate_landed_file`` as plain functions (no GX run): identify, skip, pre-checks, the
commit-time leakage re-check, the rejection reports, quarantine, and the manifest a zone is judged against."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ops.validation.helpers import land, task_text


def _index(settings, files: dict) -> None:
    settings.validated_dir.mkdir(parents=True, exist_ok=True)
    (settings.validated_dir / "index.json").write_text(json.dumps({"version": 1, "files": files}))


def test_identify_names_hashes_and_sources_the_file(tmp_path):
    from include.ops.validation.pipeline import identify
    from model.fsio import sha256_file

    path = tmp_path / "task_0.csv"
    path.write_bytes(b"a,b\n1,2\n")
    base = identify(path)
    assert (base.name, base.status, base.size_bytes, base.source) == ("task_0.csv", "", 8, str(path))
    assert base.checksum == sha256_file(path)
    named = identify(path, "as_landed.csv", "s3://bucket/landing/as_landed.csv")
    assert named.name == "as_landed.csv" and named.source == "s3://bucket/landing/as_landed.csv"


def test_already_validated_skips_known_content_only(val_env, split_digits):
    from include.ops.validation.pipeline import already_validated, identify

    settings = val_env
    base = identify(land(settings, "task_0.csv", task_text(split_digits, 0)))
    assert already_validated(base, settings) is None  # empty store
    entry = {"sha256": base.checksum, "task_id": "task_0", "rows": 360, "path": "/store/first.csv"}
    _index(settings, {"first.csv": entry})

    skipped = already_validated(base, settings)

    assert skipped is not None and skipped.status == "skipped"
    assert (skipped.task_id, skipped.rows, skipped.path) == ("task_0", 360, "/store/first.csv")
    assert skipped.reason == "already validated as first.csv" and base.status == ""
    record = json.loads((settings.log_dir / "data_validation.log").read_text().splitlines()[-1])
    assert record["level"] == "INFO" and record["validated_as"] == "first.csv"


def test_precheck_fills_the_task_then_checks_the_store(val_env, split_digits):
    from include.ops.validation.config import get_validation_config
    from include.ops.validation.pipeline import identify, load_task_manifest, precheck
    from include.ops.validation.prechecks import PrecheckFailure

    settings = val_env
    manifest_path = settings.landing_dir / "manifest.json"
    manifest = load_task_manifest(manifest_path)
    path = land(settings, "task_1.csv", task_text(split_digits, 1))
    base = identify(path)
    config = get_validation_config(settings)

    spec, frame = precheck(path, base, manifest, manifest_path, settings, config)
    assert spec.task_id == "task_1" and (base.task_id, base.rows) == ("task_1", len(frame))

    _index(settings, {"task_1.csv": {"sha256": "0" * 64, "validated_at": "earlier"}})
    with pytest.raises(PrecheckFailure) as err:
        precheck(path, identify(path), manifest, manifest_path, settings, config)
    assert err.value.check == "conflicts_with_validated"


def test_late_leakage_check_reads_only_files_the_suite_did_not_see(tmp_path, split_digits):
    import pandas as pd

    from include.ops.validation.outcome import LEAKAGE_TYPE
    from include.ops.validation.pipeline import late_leakage_check
    from include.ops.validation.prechecks import PrecheckFailure

    first = tmp_path / "task_0.csv"
    first.write_text(task_text(split_digits, 0))
    frame = pd.read_csv(first)
    stolen = frame[frame["split"] == "test"].head(2).assign(split="train", label=2)
    batch = pd.concat([pd.read_csv(split_digits.parent / "task_1.csv"), stolen], ignore_index=True)

    late_leakage_check(batch, ["task_0.csv"])([first])  # the suite compared against it already
    late_leakage_check(batch, [])([])  # nothing new in the store
    with pytest.raises(PrecheckFailure) as err:
        late_leakage_check(batch, [])([first])
    assert err.value.check == LEAKAGE_TYPE and "validated concurrently" in err.value.detail
    assert err.value.observed["by_reference"] == {"task_0.csv": 2}


def test_rejections_read_like_gx_results(tmp_path):
    from include.ops.validation.outcome import (
        LEAKAGE_TYPE,
        BatchResult,
        precheck_rejection,
        publish_rejection,
        rejection_report,
    )
    from include.ops.validation.prechecks import PrecheckFailure

    failure = PrecheckFailure("encoding", "not UTF-8 at offset 4", {"offset": 4})
    pre = precheck_rejection(failure, "task_0.csv")
    assert (pre.stage, pre.failed) == ("precheck", ["precheck.encoding"])
    only = pre.result["results"][0]
    assert only["expectation_config"]["type"] == "precheck.encoding"
    assert only["expectation_config"]["kwargs"] == {"file_name": "task_0.csv"}
    assert only["result"] == {"observed_value": {"offset": 4}, "details": "not UTF-8 at offset 4"}
    assert pre.result["statistics"]["unsuccessful_expectations"] == 1 and pre.result["success"] is False

    leak = publish_rejection(
        PrecheckFailure(LEAKAGE_TYPE, "2 rows", {"leaked_rows": 2}), "t.csv", tmp_path, "docs.html"
    )
    assert (leak.stage, leak.failed, leak.data_docs) == ("publish", [LEAKAGE_TYPE], "docs.html")
    assert leak.result["results"][0]["result"]["observed_value"] == 2
    assert leak.result["results"][0]["expectation_config"]["kwargs"] == {"reference_dir": str(tmp_path)}
    other = publish_rejection(PrecheckFailure("manifest_match", "changed"), "t.csv", tmp_path, None)
    assert (
        other.failed == ["precheck.manifest_match"]
        and other.reason == "precheck.manifest_match failed: changed"
    )

    base = BatchResult(name="t.csv", status="", checksum="ab" * 32, size_bytes=3, source="here")
    report = rejection_report(base, pre)
    assert report["check"] == "precheck.encoding" and report["status"] == "rejected"
    assert report["sha256"] == base.checksum and report["suite"] == "task_batch"
    with pytest.raises(ValueError, match="only validated batches"):
        base.asset_extra()


def test_reject_without_move_keeps_the_landed_file(val_env):
    from include.ops.validation.outcome import precheck_rejection
    from include.ops.validation.pipeline import identify, reject
    from include.ops.validation.prechecks import PrecheckFailure

    settings = val_env
    path = land(settings, "task_0.csv", b"x,y\n")
    base = identify(path)
    rejection = precheck_rejection(PrecheckFailure("csv_structure", "line 1"), base.name)

    result = reject(path, base, rejection, settings, move=False)

    assert path.exists(), "copied, not moved"
    assert result.status == "rejected" and result.failed_checks == ["precheck.csv_structure"]
    assert Path(result.path).read_bytes() == b"x,y\n" and Path(result.report_path).name == "report.json"
    alert = json.loads((settings.log_dir / "data_validation.log").read_text().splitlines()[-1])
    assert alert["alert"] == "DataValidationFailed" and alert["check"] == "precheck.csv_structure"


def test_manifest_of_a_zone_falls_back_to_the_store(val_env, split_digits):
    from include.ops.validation.landing import LocalLanding
    from include.ops.validation.outcome import ValidationSetupError
    from include.ops.validation.pipeline import load_task_manifest
    from include.ops.validation.zone import landing_manifest

    settings = val_env
    landing = LocalLanding(settings.landing_dir)
    assert landing_manifest(landing, settings) == settings.landing_dir / "manifest.json"
    (settings.landing_dir / "manifest.json").unlink()
    with pytest.raises(ValidationSetupError, match="no manifest.json in the landing zone"):
        landing_manifest(landing, settings)
    settings.validated_dir.mkdir(parents=True)
    (settings.validated_dir / "manifest.json").write_bytes(split_digits.read_bytes())
    assert landing_manifest(landing, settings) == settings.validated_dir / "manifest.json"

    broken = settings.landing_dir / "manifest.json"
    broken.write_text(json.dumps({"name": "x", "tasks": "not a list"}))
    with pytest.raises(ValidationSetupError):
        load_task_manifest(broken)


def test_validation_config_reads_the_one_settings(monkeypatch, tmp_path):
    from include.ops.settings import get_settings
    from include.ops.validation.config import DEFAULT_MAX_BYTES, GX_PROJECT_DIR, get_validation_config

    for name in ("CT_VALIDATION_MAX_BYTES", "CT_GX_PROJECT_DIR", "CT_GX_DATA_DOCS_DIR", "CT_GX_DATA_DOCS"):
        monkeypatch.delenv(name, raising=False)
    default = get_validation_config()
    assert default.max_bytes == DEFAULT_MAX_BYTES and default.build_data_docs is True
    assert default.gx_project_dir == GX_PROJECT_DIR.resolve()
    assert default.data_docs_dir == GX_PROJECT_DIR.resolve() / "uncommitted" / "data_docs"

    monkeypatch.setenv("CT_VALIDATION_MAX_BYTES", "")  # blank means unset
    assert get_validation_config().max_bytes == DEFAULT_MAX_BYTES
    monkeypatch.setenv("CT_VALIDATION_MAX_BYTES", "1000")
    monkeypatch.setenv("CT_GX_DATA_DOCS_DIR", str(tmp_path / "docs"))
    monkeypatch.setenv("CT_GX_DATA_DOCS", "off")
    settings = get_settings()
    config = get_validation_config(settings)
    assert (config.max_bytes, config.build_data_docs) == (1000, False)
    assert config.data_docs_dir == tmp_path / "docs"
    assert config.suite_path == GX_PROJECT_DIR.resolve() / "expectations" / "task_batch.json"
    for bad in ("abc", "0", "-5"):
        monkeypatch.setenv("CT_VALIDATION_MAX_BYTES", bad)
        with pytest.raises(ValueError, match="CT_VALIDATION_MAX_BYTES"):
            get_validation_config()
