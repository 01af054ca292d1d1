"""Throughput per batch size of the tiny transformer, and a recommended batch size (runbook "Performance").

    python scripts/optimize_batch_size.py                       # training sweep 16..512 on CUDA if present
    python scripts/optimize_batch_size.py --mode inference --batch-sizes 1,8,32,128
    python scripts/optimize_batch_size.py --quick               # seconds; what the tests run

Writes ``reports_dir/profiles/batch_size_<mode>_<timestamp>.json`` and prints a table. Exit 1 when no batch
size completed (e.g. out of memory at the smallest size).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.ops.perf import DEFAULT_BATCH_SIZES, MODES, batch_size_sweep, write_json_report  # noqa: E402


def _sizes(raw: str) -> list[int]:
    try:
        return [int(v) for v in raw.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {raw!r}") from exc


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--mode", choices=MODES, default="train")
    parser.add_argument("--batch-sizes", type=_sizes, default=list(DEFAULT_BATCH_SIZES))
    parser.add_argument("--steps", type=int, default=20, help="timed steps per batch size")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (allocator, kernels)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1 ...")
    parser.add_argument("--no-mixed-precision", action="store_true", help="fp32 on CUDA too")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model first")
    parser.add_argument(
        "--tolerance", type=float, default=0.9, help="fraction of the best throughput to reach"
    )
    parser.add_argument("--quick", action="store_true", help="two sizes, three steps: a smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.batch_sizes, args.steps, args.warmup = [16, 64], 3, 1
    report = batch_size_sweep(
        args.batch_sizes,
        mode=args.mode,
        steps=args.steps,
        warmup=args.warmup,
        device=args.device,
        mixed_precision=not args.no_mixed_precision,
        compile=args.compile,
        tolerance=args.tolerance,
    )
    path = write_json_report(report, f"batch_size_{args.mode}")
    print(f"{args.mode} throughput on {report['device_name']} ({report['param_count']} parameters)")
    print(f"{'batch':>6} {'samples/s':>12} {'step ms':>9} {'p95 ms':>8} {'peak MiB':>9}")
    for row in report["results"]:
        if row["status"] != "ok":
            print(f"{row['batch_size']:>6} {row['status']:>12}")
            continue
        peak = f"{row['peak_memory_bytes'] / 2**20:.0f}" if row["peak_memory_bytes"] else "-"
        print(
            f"{row['batch_size']:>6} {row['samples_per_second']:>12.0f} {row['step_seconds_mean'] * 1e3:>9.2f}"
            f" {row['step_seconds_p95'] * 1e3:>8.2f} {peak:>9}"
        )
    print(f"recommended batch size: {report['recommended_batch_size']} ({report['reason']})")
    print(f"report: {path}")
    return 0 if report["recommended_batch_size"] is not None else 1


if __name__ == "__main__":
    sys.exit(main())
