"""Data-quality analysis of a task stream (runbook "Analyze Data Quality"): per task class counts, feature
mean/std and drift against the pooled earlier tasks, saved as a JSON report and a PNG plot.

Drift scores per feature, averaged over features (constant features score 0):
- PSI (population stability index) ``sum((p - q) * ln(p / q))`` over value bins (one bin per integer value
  for small-range integer features, else 10 equal-width bins), bin shares smoothed by 1e-4.
  Rule of thumb: < 0.1 stable, 0.1-0.25 moderate shift, > 0.25 large shift.
- KS: the two-sample Kolmogorov-Smirnov statistic (largest gap between the two empirical CDFs), 0..1.
In a class-incremental stream every task brings new classes, so drift between tasks is expected; what to
look for is a task whose drift is far from the others', or a class count far from balance.
The last panel shows the class-agnostic image statistics per task (background share, ink mean, neighbour
correlation, border ink share; ``include/ops/validation/image_stats.py``): these should stay alike across tasks.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from include.ops.validation import image_stats
from include.ops.validation.config import FILE_MODE
from model.fsio import atomic_write_bytes, atomic_write_json

REPORT_JSON = "data_quality.json"
REPORT_PNG = "data_quality.png"
EPS = 1e-4
MAX_INTEGER_BINS = 64
FALLBACK_BINS = 10


def _bins(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    both = np.concatenate([a, b])
    lo, hi = float(both.min()), float(both.max())
    if np.all(both == np.round(both)) and hi - lo <= MAX_INTEGER_BINS:
        return np.arange(lo - 0.5, hi + 1.5)
    return np.linspace(lo, hi if hi > lo else lo + 1.0, FALLBACK_BINS + 1)


def psi(current: np.ndarray, reference: np.ndarray) -> float:
    """Population stability index of one feature (0 = same distribution)."""
    edges = _bins(current, reference)
    p = np.histogram(current, edges)[0] / max(len(current), 1) + EPS
    q = np.histogram(reference, edges)[0] / max(len(reference), 1) + EPS
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum((p - q) * np.log(p / q)))


def ks_statistic(current: np.ndarray, reference: np.ndarray) -> float:
    """Two-sample KS statistic of one feature: max |F_current - F_reference| over all observed values."""
    a, b = np.sort(current), np.sort(reference)
    values = np.union1d(a, b)
    cdf_a = np.searchsorted(a, values, side="right") / len(a)
    cdf_b = np.searchsorted(b, values, side="right") / len(b)
    return float(np.max(np.abs(cdf_a - cdf_b)))


def drift_scores(current: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """Mean and max PSI and KS over the feature columns of two (rows, features) arrays."""
    psis = [psi(current[:, j], reference[:, j]) for j in range(current.shape[1])]
    kss = [ks_statistic(current[:, j], reference[:, j]) for j in range(current.shape[1])]
    return {
        "psi_mean": float(np.mean(psis)),
        "psi_max": float(np.max(psis)),
        "ks_mean": float(np.mean(kss)),
        "ks_max": float(np.max(kss)),
    }


def _read_task(path: Path):
    """The task file's DataFrame and feature columns, read by the one task-file reader (as validation reads it)."""
    from include.ops.validation.prechecks import read_task_frame

    frame = read_task_frame(path)
    features = [c for c in frame.columns if str(c).startswith("f") and str(c)[1:].isdigit()]
    missing = {"label", "split"} - set(frame.columns)
    if not features or missing:
        raise ValueError(f"task file {path} lacks feature columns f0..fN or {sorted(missing)}")
    return frame, features


def _image_panel(ax: Any, present: list[dict[str, Any]]) -> None:
    """Bars of the class-agnostic image statistics per task (what validation's distribution check compares)."""
    x, width = np.arange(len(present)), 0.8 / len(image_stats.SCALARS)
    for k, key in enumerate(image_stats.SCALARS):
        values = [t.get("image_stats", {}).get(key, 0.0) for t in present]
        ax.bar(x - 0.4 + width * (k + 0.5), values, width, label=key.replace("_", " "))
    ids = [t["task_id"] for t in present]
    ax.set(xticks=x, xticklabels=ids, ylim=(0, 1), title="Image statistics per task (class-agnostic)")
    ax.legend(fontsize=7)


def _plot(tasks: list[dict[str, Any]], path: Path) -> None:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    present = [t for t in tasks if t["present"]]
    fig, axes = plt.subplots(1, 4, figsize=(21, 4.5))
    ids = [t["task_id"] for t in present]
    x = np.arange(len(present))
    width = 0.8 / max(max((len(t["class_counts"]) for t in present), default=1), 1)
    for i, t in enumerate(present):
        for k, (cls, count) in enumerate(sorted(t["class_counts"].items(), key=lambda kv: int(kv[0]))):
            axes[0].bar(i - 0.4 + width * (k + 0.5), count, width, color=f"C{int(cls) % 10}")
            axes[0].text(i - 0.4 + width * (k + 0.5), count, cls, ha="center", va="bottom", fontsize=8)
    axes[0].set(xticks=x, xticklabels=ids, ylabel="rows", title="Class counts per task (bar label: class)")
    psi_mean = [t["drift"]["psi_mean"] if t["drift"] else 0.0 for t in present]
    ks_mean = [t["drift"]["ks_mean"] if t["drift"] else 0.0 for t in present]
    axes[1].bar(x - 0.2, psi_mean, 0.4, label="PSI (mean over features)")
    axes[1].bar(x + 0.2, ks_mean, 0.4, label="KS (mean over features)")
    axes[1].axhline(0.25, color="grey", linestyle="--", linewidth=0.8)
    axes[1].set(xticks=x, xticklabels=ids, title="Drift vs pooled earlier tasks")
    axes[1].legend(fontsize=8)
    means = np.array([t["feature_mean"] for t in present]) if present else np.zeros((1, 1))
    image = axes[2].imshow(means, aspect="auto", cmap="viridis")
    axes[2].set(yticks=x, yticklabels=ids, xlabel="feature", title="Feature mean per task")
    fig.colorbar(image, ax=axes[2])
    _image_panel(axes[3], present)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue(), FILE_MODE)


def analyze(manifest_path: Path, out_dir: Path) -> dict[str, Any]:
    """Analyze every task file of the manifest that exists; write ``data_quality.json``/``.png`` into ``out_dir``.

    Returns the report (JSON-serialisable) including ``json_path`` and ``png_path``. Tasks listed in the
    manifest whose file is absent (not validated yet) are reported with ``present: false``.
    """
    from model.data import load_manifest

    manifest_path, out_dir = Path(manifest_path), Path(out_dir)
    manifest = load_manifest(manifest_path)
    tasks: list[dict[str, Any]] = []
    earlier: list[np.ndarray] = []
    earlier_ids: list[str] = []
    for index, spec in enumerate(manifest.tasks):
        path = manifest_path.parent / spec.file
        entry: dict[str, Any] = {
            "task_id": spec.task_id,
            "index": index,
            "file": str(path),
            "classes": spec.classes,
        }
        if not path.is_file():
            tasks.append({**entry, "present": False, "drift": None})
            continue
        frame, features = _read_task(path)
        x = frame[features].to_numpy(dtype=np.float64)
        counts = frame["label"].value_counts().sort_index()
        split = frame["split"].value_counts()
        mean, std = x.mean(axis=0), x.std(axis=0)
        drift = None
        if earlier:
            drift = {**drift_scores(x, np.concatenate(earlier)), "reference_tasks": list(earlier_ids)}
        tasks.append(
            {
                **entry,
                "present": True,
                "rows": len(frame),
                "train_rows": int(split.get("train", 0)),
                "test_rows": int(split.get("test", 0)),
                "class_counts": {str(k): int(v) for k, v in counts.items()},
                "num_features": len(features),
                "feature_mean": [round(float(v), 6) for v in mean],
                "feature_std": [round(float(v), 6) for v in std],
                "mean_of_feature_means": float(mean.mean()),
                "mean_of_feature_stds": float(std.mean()),
                "image_stats": image_stats.image_scalars(x.astype(np.int64)),
                "drift": drift,
            }
        )
        earlier.append(x)
        earlier_ids.append(spec.task_id)
    out_dir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "manifest": str(manifest_path),
        "stream": manifest.name,
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "drift_reference": "all rows of the earlier tasks present, pooled",
        "tasks": tasks,
        "json_path": str(out_dir / REPORT_JSON),
        "png_path": str(out_dir / REPORT_PNG),
    }
    _plot(tasks, out_dir / REPORT_PNG)
    atomic_write_json(out_dir / REPORT_JSON, report, FILE_MODE)
    return report


def format_table(report: dict[str, Any]) -> str:
    """The report as a fixed-width text table, one line per task."""
    lines = [
        f"{'task':<10} {'rows':>6} {'train':>6} {'test':>5}  {'class counts':<22} {'feat mean':>9} {'feat std':>8}"
        f" {'PSI mean':>8} {'KS mean':>7}"
    ]
    for t in report["tasks"]:
        if not t["present"]:
            lines.append(f"{t['task_id']:<10} (file not present: {t['file']})")
            continue
        counts = " ".join(f"{k}:{v}" for k, v in t["class_counts"].items())
        psi_mean = f"{t['drift']['psi_mean']:.3f}" if t["drift"] else "-"
        ks_mean = f"{t['drift']['ks_mean']:.3f}" if t["drift"] else "-"
        lines.append(
            f"{t['task_id']:<10} {t['rows']:>6} {t['train_rows']:>6} {t['test_rows']:>5}  {counts:<22}"
            f" {t['mean_of_feature_means']:>9.3f} {t['mean_of_feature_stds']:>8.3f} {psi_mean:>8} {ks_mean:>7}"
        )
    return "\n".join(lines)
