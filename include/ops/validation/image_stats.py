"""Is a batch made of images like the stream's? Class-agnostic image statistics, not per-pixel drift.

Per-pixel PSI cannot tell a new task from garbage: legitimate Split-Digits tasks differ from task 0 by a mean
PSI of 0.3-0.7, because each brings other digits. These statistics describe what every image of the stream
shares whatever its class (images are ``side x side`` with ``side = sqrt(n_features)``, else one row):

- ``histogram``: share of pixels per intensity 0..PIXEL_MAX; compared by total-variation distance (0..1);
- ``background_share``: share of zero pixels;
- ``ink_mean``: mean of the non-zero pixels / PIXEL_MAX;
- ``neighbour_corr``: Pearson correlation of horizontally adjacent pixels;
- ``column_profile`` / ``row_profile``: share of the ink per image column / row (the digits are centred),
  compared by total-variation distance; ``border_ink_share``: ink share of the first and last column.

A batch is compared with the pooled validated files of its stream (``index.json``'s files); the first batch
of a stream, with nothing to compare with, against absolute bounds. Thresholds are Settings fields
(``CT_VALIDATION_IMAGE_*``); ``CT_VALIDATION_IMAGE_CHECK`` = ``fail`` (default: reject), ``warn`` (WARNING
record, batch passes) or ``off``. Additive counts per validated file are kept in
``validated_dir/image_stats.json``, reconciled with ``index.json`` on every load like the row index.

Measured (sklearn digits; "stream" = vs the pooled earlier tasks; corr drop = stream minus batch):

| statistic (default limit)      | Split-Digits + both bench streams | noise 0..16   | half intensity | rolled 3 columns |
|--------------------------------|-----------------------------------|---------------|----------------|------------------|
| histogram distance (<= 0.22)   | 0.009-0.093                       | 0.43-0.49     | 0.28-0.29      | same as clean    |
| background share delta (<=0.15)| 0.001-0.049                       | 0.41-0.44     | 0.01-0.08      | same as clean    |
| ink mean delta (<= 0.15)       | 0.001-0.058                       | 0.04-0.08     | 0.25-0.30      | same as clean    |
| neighbour corr drop (<= 0.15)  | -0.109-0.042                      | 0.33-0.41     | -0.10-0.06     | < 0              |
| column profile distance (<=0.4)| 0.044-0.150 (row: 0.041-0.141)    | 0.37-0.40     | 0.045-0.156    | 0.63-0.69        |
| first batch: background share [0.3, 0.75] | 0.469-0.493            | 0.06          | 0.51-0.53      | 0.47-0.49        |
| first batch: ink mean [0.45, 0.8]         | 0.573-0.607            | 0.53          | 0.29-0.31      | 0.57-0.61        |
| first batch: neighbour corr (>= 0.1)      | 0.327-0.386            | -0.01         | 0.32-0.38      | 0.42-0.47        |
| first batch: border ink share (<= 0.1)    | 0.0001-0.004           | 0.25          | 0.0001-0.004   | 0.39-0.47        |

One class per task (digits 0..9 alone) stays inside every limit too: histogram 0.185, column profile
0.296, row profile 0.238 at most; digit 0 alone has the lowest neighbour correlation, 0.179. The bench's
jittered 100k-row batch as a first batch: background 0.44, ink 0.56, corr 0.34, border 0.012.
CPU time on 100k rows x 64 pixels: 0.04 s for the counts (comparing them is negligible).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from math import isqrt
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from include.ops.validation.config import FILE_MODE
from include.ops.validation.prechecks import PrecheckFailure
from include.ops.validation.row_index import read_pixels
from include.ops.validation.store import LOCK_NAME, read_index
from model.data import PIXEL_MAX
from model.fsio import atomic_write_json, file_lock, read_json

if TYPE_CHECKING:
    from include.ops.settings import Settings

log = logging.getLogger(__name__)

STATS_NAME = "image_stats.json"
STATS_VERSION = 1
CHECK = "image_distribution"
MODES = ("fail", "warn", "off")
_SUMS = ("rows", "pairs", "sum_a", "sum_b", "sum_aa", "sum_bb", "sum_ab")


def image_shape(n_features: int) -> tuple[int, int]:
    """(height, width) of an image of ``n_features`` pixels: square when it can be, else one row."""
    side = isqrt(n_features)
    return (side, side) if side * side == n_features and side > 1 else (1, n_features)


def sufficient_stats(pixels: np.ndarray) -> dict[str, Any]:
    """Additive counts of a (rows, features) pixel array: histogram, neighbour sums, column and row ink."""
    x = np.clip(np.asarray(pixels), 0, PIXEL_MAX).astype(np.int16)  # products stay <= 256: int16 is exact
    n, f = x.shape
    h, w = image_shape(f)
    grid = x.sum(axis=0, dtype=np.int64).reshape(h, w)
    squares = (x * x).sum(axis=0, dtype=np.int64).reshape(h, w)
    # horizontal neighbours: adjacent flat positions, less the pairs that wrap from one image row to the next
    products = (x[:, :-1] * x[:, 1:]).sum(axis=0, dtype=np.int64)
    same_row = (np.arange(f - 1) % w) != w - 1
    return {
        "rows": int(n),
        "height": h,
        "width": w,
        "histogram": np.bincount(x.ravel(), minlength=PIXEL_MAX + 1).tolist(),
        "pairs": int(n * h * (w - 1)),
        "sum_a": int(grid[:, :-1].sum()),
        "sum_b": int(grid[:, 1:].sum()),
        "sum_aa": int(squares[:, :-1].sum()),
        "sum_bb": int(squares[:, 1:].sum()),
        "sum_ab": int(products[same_row].sum()),
        "columns": grid.sum(axis=0).tolist(),
        "image_rows": grid.sum(axis=1).tolist(),
    }


def merge(parts: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The counts of several files pooled (None when there are none); ValueError when shapes differ."""
    if not parts:
        return None
    shapes = {(p["height"], p["width"]) for p in parts}
    if len(shapes) != 1:
        raise ValueError(f"files of different image shapes {sorted(shapes)} cannot be pooled")
    out = {k: sum(p[k] for p in parts) for k in _SUMS}
    for key in ("histogram", "columns", "image_rows"):
        out[key] = np.sum([p[key] for p in parts], axis=0).tolist()
    return {**out, "height": parts[0]["height"], "width": parts[0]["width"]}


def _shares(values: list[int]) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    return v / v.sum() if v.sum() else v


def describe(stats: dict[str, Any]) -> dict[str, Any]:
    """The statistics of pooled counts: histogram, background share, ink mean, correlation, profiles."""
    hist = np.asarray(stats["histogram"], dtype=np.float64)
    pixels = hist.sum()
    ink_pixels = pixels - hist[0]
    ink = float(np.dot(hist, np.arange(len(hist))))
    n = stats["pairs"]
    corr = 0.0
    if n:
        ma, mb = stats["sum_a"] / n, stats["sum_b"] / n
        va, vb = stats["sum_aa"] / n - ma * ma, stats["sum_bb"] / n - mb * mb
        if va > 0 and vb > 0:
            corr = (stats["sum_ab"] / n - ma * mb) / float(np.sqrt(va * vb))
    columns = _shares(stats["columns"])
    return {
        "rows": stats["rows"],
        "image_shape": [stats["height"], stats["width"]],
        "histogram": [round(float(v), 6) for v in (hist / pixels if pixels else hist)],
        "background_share": round(float(hist[0] / pixels), 6) if pixels else 0.0,
        "ink_mean": round(float(ink / ink_pixels / PIXEL_MAX), 6) if ink_pixels else 0.0,
        "neighbour_corr": round(float(corr), 6),
        "column_profile": [round(float(v), 6) for v in columns],
        "row_profile": [round(float(v), 6) for v in _shares(stats["image_rows"])],
        "border_ink_share": round(float(columns[0] + columns[-1]), 6) if len(columns) > 1 else 0.0,
    }


def _tv(p: list[float], q: list[float]) -> float:
    return round(0.5 * float(np.abs(np.asarray(p) - np.asarray(q)).sum()), 6)


@dataclass(frozen=True)
class ImageLimits:
    """The thresholds of the check (Settings ``validation_image_*``) and its mode."""

    mode: str = "fail"
    histogram_max: float = 0.22
    background_delta_max: float = 0.15
    ink_delta_max: float = 0.15
    corr_drop_max: float = 0.15
    profile_max: float = 0.4
    background_min: float = 0.3
    background_max: float = 0.75
    ink_min: float = 0.45
    ink_max: float = 0.8
    corr_min: float = 0.1
    border_max: float = 0.1

    @classmethod
    def from_settings(cls, settings: Settings) -> ImageLimits:
        """The limits configured in ``settings``."""
        return cls(**{k: getattr(settings, f"validation_image_{k}") for k in cls.__dataclass_fields__})


def compare(batch: dict[str, Any], reference: dict[str, Any] | None, limits: ImageLimits) -> dict[str, Any]:
    """Each measure with its limit and verdict: against the stream, or the first-batch bounds when none."""

    def measure(value: float, low: float | None, high: float | None) -> dict[str, Any]:
        ok = (low is None or value >= low) and (high is None or value <= high)
        return {"value": round(value, 6), "min": low, "max": high, "ok": bool(ok)}

    if reference is None:
        measures = {
            "background_share": measure(
                batch["background_share"], limits.background_min, limits.background_max
            ),
            "ink_mean": measure(batch["ink_mean"], limits.ink_min, limits.ink_max),
            "neighbour_corr": measure(batch["neighbour_corr"], limits.corr_min, None),
            "border_ink_share": measure(batch["border_ink_share"], None, limits.border_max),
        }
    else:
        measures = {
            "histogram_distance": measure(
                _tv(batch["histogram"], reference["histogram"]), None, limits.histogram_max
            ),
            "background_share_delta": measure(
                abs(batch["background_share"] - reference["background_share"]),
                None,
                limits.background_delta_max,
            ),
            "ink_mean_delta": measure(
                abs(batch["ink_mean"] - reference["ink_mean"]), None, limits.ink_delta_max
            ),
            "neighbour_corr_drop": measure(
                reference["neighbour_corr"] - batch["neighbour_corr"], None, limits.corr_drop_max
            ),
            "column_profile_distance": measure(
                _tv(batch["column_profile"], reference["column_profile"]), None, limits.profile_max
            ),
            "row_profile_distance": measure(
                _tv(batch["row_profile"], reference["row_profile"]), None, limits.profile_max
            ),
        }
    return {
        "against": "first-batch bounds" if reference is None else "stream",
        "measures": measures,
        "failed": [name for name, m in measures.items() if not m["ok"]],
    }


def _reference_counts(validated_dir: Path, known: dict[str, dict[str, Any]] | None = None) -> dict[str, Any]:
    """``{name: {sha256, stats}}`` of the store's validated files, reconciled with ``index.json``."""
    validated_dir = Path(validated_dir)
    try:
        raw = read_json(validated_dir / STATS_NAME, {})
        stored = raw.get("files", {}) if raw.get("version") == STATS_VERSION else {}
    except (ValueError, AttributeError) as exc:
        log.warning("%s is unreadable (%s): rebuilding it from the validated store", STATS_NAME, exc)
        stored = {}
    files: dict[str, Any] = {}
    for name, entry in read_index(validated_dir).get("files", {}).items():
        sha = str(entry.get("sha256"))
        have = stored.get(name)
        if isinstance(have, dict) and have.get("sha256") == sha and isinstance(have.get("stats"), dict):
            files[name] = have
        elif known is not None and name in known:
            files[name] = {"sha256": sha, "stats": known[name]}
        elif (validated_dir / name).is_file():
            try:
                files[name] = {"sha256": sha, "stats": sufficient_stats(read_pixels(validated_dir / name))}
            except ValueError as exc:
                log.warning("%s: left out of the image statistics", exc)
    return files


def record(validated_dir: Path, name: str, stats: dict[str, Any]) -> Path:
    """After ``name`` was published: under the store lock, reconcile and write ``image_stats.json``."""
    path = Path(validated_dir) / STATS_NAME
    with file_lock(Path(validated_dir) / LOCK_NAME):
        files = _reference_counts(validated_dir, known={name: stats})
        atomic_write_json(path, {"version": STATS_VERSION, "files": files}, FILE_MODE)
    return path


def distribution_report(
    pixels: np.ndarray, validated_dir: Path, name: str, limits: ImageLimits
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(report, the batch's counts): the batch's statistics against its stream's validated files."""
    counts = sufficient_stats(pixels)
    batch = describe(counts)
    others = {n: v for n, v in _reference_counts(validated_dir).items() if n != name}
    shape = (counts["height"], counts["width"])
    pooled = merge(
        [v["stats"] for v in others.values() if (v["stats"]["height"], v["stats"]["width"]) == shape]
    )
    reference = describe(pooled) if pooled is not None else None
    verdict = compare(batch, reference, limits)
    report = {
        "mode": limits.mode,
        **verdict,
        "reference_files": sorted(others),
        "batch": batch,
        "stream": reference,
    }
    return report, counts


def check_distribution(report: dict[str, Any]) -> None:
    """Raise PrecheckFailure ``image_distribution`` when measures failed and the mode is ``fail``."""
    if not report["failed"] or report["mode"] != "fail":
        return
    parts = []
    for key in report["failed"]:
        m = report["measures"][key]
        bound = f">= {m['min']}" if m["min"] is not None and m["value"] < m["min"] else f"<= {m['max']}"
        parts.append(f"{key} {m['value']:.3f} (limit {bound})")
    raise PrecheckFailure(
        CHECK,
        f"the images do not look like the stream's ({report['against']}): {'; '.join(parts)}; "
        "thresholds CT_VALIDATION_IMAGE_*, mode CT_VALIDATION_IMAGE_CHECK=warn to only warn",
        report,
    )


def summary_of(report: dict[str, Any]) -> dict[str, Any]:
    """The part of a report kept in the batch summary: verdict, measures and the batch's scalar statistics."""
    if report.get("mode") == "off":
        return {"mode": "off"}
    return {
        "mode": report["mode"],
        "against": report["against"],
        "failed": report["failed"],
        "measures": {k: m["value"] for k, m in report["measures"].items()},
        "batch": {k: report["batch"][k] for k in SCALARS},
        "reference_files": len(report["reference_files"]),
    }


SCALARS = ("background_share", "ink_mean", "neighbour_corr", "border_ink_share")


def image_scalars(pixels: np.ndarray) -> dict[str, float]:
    """The scalar image statistics of a (rows, features) pixel array (the data-quality report's panel)."""
    described = describe(sufficient_stats(pixels))
    return {k: described[k] for k in SCALARS}
