"""Runbook "Analyze Data Quality": per-task class counts, feature mean/std and drift; table + JSON + PNG.

    python scripts/analyze_data_quality.py [--manifest PATH] [--out DIR]

Default manifest: the one training reads (``include.ops.task_manifest.resolve_task_manifest``: the validated
store's once validation has run, else the generated stream's ``CT_DATA_DIR/manifest.json``, written from
scikit-learn's digits when missing).
Default output: ``CT_REPORTS_DIR/data_quality/``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from include.ops.settings import get_settings  # noqa: E402
from include.ops.task_manifest import resolve_task_manifest  # noqa: E402


def default_manifest() -> Path:
    """The manifest training reads; the generated stream's, written first, when there is none yet."""
    settings = get_settings()
    path = resolve_task_manifest(settings)
    if not path.exists():
        from model.data import write_split_digits

        print(f"no task stream yet: writing Split-Digits to {settings.data_dir}")
        return write_split_digits(settings.data_dir)
    return path


def main(argv: list[str] | None = None) -> int:
    """Analyze, print the table and where the reports are; exit 2 when the stream cannot be read."""
    from include.ops.data_quality import analyze, format_table

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--manifest", type=Path, help="task manifest (default: validated store, else data dir)"
    )
    parser.add_argument("--out", type=Path, help="output folder (default: CT_REPORTS_DIR/data_quality)")
    args = parser.parse_args(argv)
    manifest = args.manifest or default_manifest()
    out = args.out or get_settings().reports_dir / "data_quality"
    try:
        report = analyze(manifest, out)
    except (OSError, ValueError) as exc:
        print(f"data quality analysis failed: {exc}", file=sys.stderr)
        return 2
    print(f"Data quality of {report['stream']} ({manifest})")
    print(format_table(report))
    print(f"\nJSON report: {report['json_path']}\nPlot:        {report['png_path']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
