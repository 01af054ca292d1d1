"""Image statistics: noise, half intensity and shifted images are caught at the default thresholds; the five
Split-Digits tasks and both bench streams pass in order; fail or warn through the pipeline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.ops.validation.helpers import land, store_snapshot

SPLIT_DIGITS = [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]
BENCH_STREAMS = {
    "split_digits": SPLIT_DIGITS,
    "pairs": [[0, 5], [1, 6], [2, 7], [3, 8], [4, 9]],
    "three_tasks": [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9]],
}


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits: (pixels int64, labels)."""
    from sklearn.datasets import load_digits

    data = load_digits()
    return data.data.astype(np.int64), data.target


def _noise(x: np.ndarray) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 17, size=x.shape)


def _half(x: np.ndarray) -> np.ndarray:
    return x // 2


def _rolled(x: np.ndarray) -> np.ndarray:
    return np.roll(x.reshape(len(x), 8, 8), 3, axis=2).reshape(len(x), 64)


CORRUPTIONS = {"uniform noise": _noise, "half intensity": _half, "rolled 3 columns": _rolled}


def _verdict(pixels: np.ndarray, earlier: list[np.ndarray]) -> dict:
    from include.ops.validation.image_stats import ImageLimits, compare, describe, merge, sufficient_stats

    reference = merge([sufficient_stats(e) for e in earlier])
    return compare(
        describe(sufficient_stats(pixels)), describe(reference) if reference else None, ImageLimits()
    )


def test_defaults_are_the_settings_defaults():
    from include.ops.settings import Settings
    from include.ops.validation.image_stats import ImageLimits

    assert ImageLimits.from_settings(Settings()) == ImageLimits()


@pytest.mark.parametrize("stream", sorted(BENCH_STREAMS))
def test_legitimate_streams_pass_in_order(digits, stream):
    x, y = digits
    earlier: list[np.ndarray] = []
    for group in BENCH_STREAMS[stream]:
        task = x[np.isin(y, group)]
        verdict = _verdict(task, earlier)
        assert verdict["failed"] == [], (stream, group, verdict)
        assert verdict["against"] == ("stream" if earlier else "first-batch bounds")
        earlier.append(task)


@pytest.mark.parametrize("corruption", sorted(CORRUPTIONS))
@pytest.mark.parametrize("position", [0, 1, 4])
def test_corrupted_images_are_caught_first_or_later(digits, corruption, position):
    """Defect 5: each corruption of Split-Digits task ``position`` fails, as a first batch or after the others."""
    x, y = digits
    earlier = [x[np.isin(y, g)] for g in SPLIT_DIGITS[:position]]
    bad = CORRUPTIONS[corruption](x[np.isin(y, SPLIT_DIGITS[position])])
    verdict = _verdict(bad, earlier)
    assert verdict["failed"], (corruption, position, verdict)


def test_non_square_images_and_empty_counts_do_not_crash():
    from include.ops.validation.image_stats import describe, image_shape, sufficient_stats

    assert image_shape(64) == (8, 8) and image_shape(10) == (1, 10) and image_shape(1) == (1, 1)
    flat = describe(sufficient_stats(np.zeros((4, 10), dtype=np.int64)))
    assert flat["background_share"] == 1.0 and flat["neighbour_corr"] == 0.0 and flat["ink_mean"] == 0.0


def _seed_store(settings, split_digits: Path) -> None:
    from include.ops.validation.store import publish_validated
    from model.fsio import sha256_file

    src = split_digits.parent / "task_0.csv"
    entry = {"task_id": "task_0", "rows": 0, "validated_at": "earlier", "source": str(src), "report": ""}
    publish_validated(
        src, src.name, sha256_file(src), settings.landing_dir / "manifest.json", settings.validated_dir, entry
    )


def _noise_batch(split_digits: Path, k: int) -> str:
    """Task ``k``'s labels and splits over uniformly random pixels 0..16 (passes every expectation)."""
    frame = pd.read_csv(split_digits.parent / f"task_{k}.csv")
    features = [c for c in frame.columns if c.startswith("f")]
    frame[features] = np.random.default_rng(k).integers(0, 17, size=(len(frame), len(features)))
    return frame.to_csv(index=False)


def test_noise_batch_is_rejected_and_quarantined(val_env, split_digits):
    from include.ops.validation.pipeline import validate_landed_file

    settings = val_env
    _seed_store(settings, split_digits)
    noise = _noise_batch(split_digits, 1)
    path = land(settings, "task_1.csv", noise)
    before = store_snapshot(settings.validated_dir)

    result = validate_landed_file(
        path, manifest_path=settings.landing_dir / "manifest.json", settings=settings
    )

    assert result.status == "rejected" and result.failed_checks == ["image_distribution"], result.reason
    assert "histogram_distance" in result.reason and "CT_VALIDATION_IMAGE" in result.reason
    details = json.loads(Path(result.report_path).read_text())["result"]["results"][0]["result"]["details"]
    assert details["against"] == "stream" and details["reference_files"] == ["task_0.csv"]
    assert {"histogram_distance", "background_share_delta", "neighbour_corr_drop"} <= set(details["failed"])
    assert Path(result.path).read_text() == noise
    assert store_snapshot(settings.validated_dir) == before


def test_warn_mode_passes_with_a_warning_in_the_report(val_env, split_digits, monkeypatch):
    from include.ops.settings import get_settings
    from include.ops.validation.pipeline import validate_landed_file

    monkeypatch.setenv("CT_VALIDATION_IMAGE_MODE", "warn")
    settings = get_settings()
    path = land(settings, "task_0.csv", _noise_batch(split_digits, 0))  # first batch: the bounds

    result = validate_landed_file(
        path, manifest_path=settings.landing_dir / "manifest.json", settings=settings
    )

    assert result.status == "validated", result.reason
    summary = result.summary["image_distribution"]
    assert summary["mode"] == "warn" and summary["against"] == "first-batch bounds"
    assert {"background_share", "neighbour_corr", "border_ink_share"} <= set(summary["failed"])
    records = [
        json.loads(line) for line in (settings.log_dir / "data_validation.log").read_text().splitlines()
    ]
    assert any(r["level"] == "WARNING" and r.get("check") == "image_distribution" for r in records)
    stored = json.loads((settings.validated_dir / "image_stats.json").read_text())
    assert stored["files"]["task_0.csv"]["stats"]["rows"] == result.rows


def test_reference_counts_are_rebuilt_when_missing(tmp_path, split_digits):
    from include.ops.validation.image_stats import ImageLimits, distribution_report, sufficient_stats
    from include.ops.validation.row_index import read_pixels
    from include.ops.validation.store import publish_validated
    from model.fsio import sha256_file

    store = tmp_path / "validated"
    src = split_digits.parent / "task_0.csv"
    publish_validated(src, src.name, sha256_file(src), split_digits, store, {"task_id": "task_0"})
    batch = read_pixels(split_digits.parent / "task_1.csv")

    report, counts = distribution_report(batch, store, "task_1.csv", ImageLimits())

    assert (
        report["against"] == "stream"
        and report["failed"] == []
        and report["reference_files"] == ["task_0.csv"]
    )
    assert counts == sufficient_stats(batch)
    (store / "image_stats.json").write_text("{garbled")
    assert distribution_report(batch, store, "task_1.csv", ImageLimits())[0]["reference_files"] == [
        "task_0.csv"
    ]


def test_data_quality_report_shows_the_image_statistics(split_digits, tmp_path):
    from include.ops.data_quality import analyze

    report = analyze(split_digits, tmp_path)

    for task in report["tasks"]:
        stats = task["image_stats"]
        assert set(stats) == {"background_share", "ink_mean", "neighbour_corr", "border_ink_share"}
        assert 0.4 < stats["background_share"] < 0.6 and stats["border_ink_share"] < 0.01
    assert Path(report["png_path"]).stat().st_size > 10_000


def test_counts_equal_the_direct_formulas():
    from include.ops.validation.image_stats import merge, sufficient_stats

    x = np.random.default_rng(1).integers(0, 17, (300, 64))
    counts = sufficient_stats(x)
    images = x.reshape(-1, 8, 8)
    a, b = images[:, :, :-1], images[:, :, 1:]
    assert (counts["pairs"], counts["sum_a"], counts["sum_b"]) == (a.size, a.sum(), b.sum())
    assert (counts["sum_aa"], counts["sum_bb"], counts["sum_ab"]) == (
        (a * a).sum(),
        (b * b).sum(),
        (a * b).sum(),
    )
    assert counts["columns"] == images.sum(axis=(0, 1)).tolist()
    assert counts["image_rows"] == images.sum(axis=(0, 2)).tolist()
    assert merge([sufficient_stats(x[:100]), sufficient_stats(x[100:])]) == counts
