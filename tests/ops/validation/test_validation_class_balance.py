"""Class balance is configuration: a one-class-per-task stream is refused at the defaults and accepted with
CT_VALIDATION_MIN_CLASSES_PER_TASK=1; the class-share bound follows CT_VALIDATION_MAX_CLASS_SHARE."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.ops.validation.helpers import land


@pytest.fixture(scope="session")
def one_class_stream(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Digits 3 and 7 as two tasks of one class each; returns the manifest path."""
    from model.data import write_digit_stream

    return write_digit_stream(tmp_path_factory.mktemp("one_class"), ((3,), (7,)), seed=0, name="one_class")


def _settings(ct_env: Path, monkeypatch: pytest.MonkeyPatch, manifest: Path, **env: str):
    from include.ops.settings import get_settings

    monkeypatch.setenv("CT_GX_DATA_DOCS", "0")
    for name in ("CT_VALIDATION_MIN_CLASSES_PER_TASK", "CT_VALIDATION_MAX_CLASS_SHARE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = get_settings()
    settings.landing_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(manifest, settings.landing_dir / "manifest.json")
    return settings


def _validate(settings, name: str, data: str):
    from include.ops.validation.pipeline import validate_landed_file

    return validate_landed_file(
        land(settings, name, data), manifest_path=settings.landing_dir / "manifest.json", settings=settings
    )


def test_one_class_batch_is_refused_at_the_defaults_because_they_ask_for_two_classes(
    ct_env: Path, monkeypatch: pytest.MonkeyPatch, one_class_stream: Path
) -> None:
    from include.ops.settings import Settings

    assert Settings.model_fields["validation_min_classes_per_task"].default == 2
    settings = _settings(ct_env, monkeypatch, one_class_stream)
    result = _validate(settings, "task_0.csv", (one_class_stream.parent / "task_0.csv").read_text())
    assert result.status == "rejected", result
    assert result.failed_checks == ["expect_column_unique_value_count_to_be_between"], result.failed_checks
    assert not (settings.validated_dir / "task_0.csv").exists()


def test_one_class_stream_is_accepted_with_the_setting(
    ct_env: Path, monkeypatch: pytest.MonkeyPatch, one_class_stream: Path
) -> None:
    settings = _settings(ct_env, monkeypatch, one_class_stream, CT_VALIDATION_MIN_CLASSES_PER_TASK="1")
    for k in (0, 1):
        result = _validate(settings, f"task_{k}.csv", (one_class_stream.parent / f"task_{k}.csv").read_text())
        assert result.status == "validated", result
    assert (settings.validated_dir / "task_1.csv").exists()


def test_a_two_class_task_still_needs_both_classes_with_the_setting(
    ct_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from model.data import write_digit_stream

    manifest = write_digit_stream(tmp_path / "pairs", ((0, 1),), seed=0)
    settings = _settings(ct_env, monkeypatch, manifest, CT_VALIDATION_MIN_CLASSES_PER_TASK="1")
    lines = (manifest.parent / "task_0.csv").read_text().splitlines()
    only_zeros = "\n".join([lines[0], *(r for r in lines[1:] if r.split(",")[64] == "0")]) + "\n"
    result = _validate(settings, "task_0.csv", only_zeros)
    assert result.status == "rejected"
    assert "expect_column_distinct_values_to_contain_set" in result.failed_checks


@pytest.mark.parametrize(("share", "status"), [(None, "validated"), ("0.6", "rejected")])
def test_class_share_bound_is_a_setting(
    ct_env: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, share: str | None, status: str
) -> None:
    """A 70/30 batch passes the default 0.8 bound and fails CT_VALIDATION_MAX_CLASS_SHARE=0.6."""
    from model.data import write_digit_stream

    manifest = write_digit_stream(tmp_path / "pairs", ((0, 1),), seed=0)
    env = {"CT_VALIDATION_MAX_CLASS_SHARE": share} if share else {}
    settings = _settings(ct_env, monkeypatch, manifest, **env)
    lines = (manifest.parent / "task_0.csv").read_text().splitlines()
    rows = [r.split(",") for r in lines[1:]]
    zeros = [r for r in rows if r[64] == "0"]
    ones = [r for r in rows if r[64] == "1"][: len(zeros) * 3 // 7]
    text = "\n".join([lines[0], *(",".join(r) for r in zeros + ones)]) + "\n"
    result = _validate(settings, "task_0.csv", text)
    assert result.status == status, result
    if status == "rejected":
        assert result.failed_checks == ["expect_column_max_value_share_to_be_between"]


def test_balance_parameters_hold_k_classes_to_at_least_one_kth() -> None:
    from dataclasses import replace

    from include.ops.settings import Settings
    from include.ops.validation.config import get_validation_config
    from include.ops.validation.gx_suite import balance_parameters

    config = get_validation_config(Settings())
    assert balance_parameters(config, [0, 1]) == {"min_classes_per_task": 2, "max_class_share": 0.8}
    assert balance_parameters(config, [4])["max_class_share"] == 1.0
    assert balance_parameters(replace(config, max_class_share=0.2), [0, 1, 2])["max_class_share"] == 1 / 3
