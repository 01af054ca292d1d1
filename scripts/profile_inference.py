"""Profile inference (runbook "Performance Degradation"): latency per batch size, cProfile and torch profiler.

    python scripts/profile_inference.py                       # newest checkpoint, batch 1 and 32
    python -m cProfile -s cumulative scripts/profile_inference.py
    python scripts/profile_inference.py --quick               # seconds; what the tests run

Loads the newest verified checkpoint under ``CT_STATE_DIR`` (``--checkpoint`` to choose one; a fresh model
when there is none, reported as such). Writes ``inference_<ts>.json`` (p50/p95 latency and samples/s per batch
size), ``inference_<ts>_cprofile.txt``, ``inference_<ts>_torch_ops.txt`` and ``inference_<ts>_trace.json``
to ``reports_dir/profiles/``. Compares P95 with the runbook's 500 ms target.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.ops.perf import percentile, profile_dir, timestamp, write_json_report  # noqa: E402
from include.ops.settings import get_settings  # noqa: E402

P95_TARGET_SECONDS = 0.5  # runbook checklist: inference latency P95 < 500 ms


def load_model(checkpoint: Path | None, device: Any) -> tuple[Any, str]:
    """The model of ``checkpoint`` (default: newest verified one in the state dir), else a fresh one."""
    from model.checkpoint import load_checkpoint
    from model.config import ModelConfig
    from model.learner import list_checkpoints
    from model.network import TinyTransformer

    candidates = (
        [checkpoint] if checkpoint else [p for _, p in list_checkpoints(get_settings().checkpoint_dir)]
    )
    for path in candidates:
        try:
            payload = load_checkpoint(path)
        except Exception as exc:  # a corrupted newest checkpoint must not stop the profile: try the next
            print(f"skipping {path}: {exc}", file=sys.stderr)
            continue
        model = TinyTransformer(ModelConfig.from_dict(payload["model_config"]))
        model.load_state_dict(payload["model_state"])
        return model.to(device).eval(), str(path)
    if checkpoint:
        raise SystemExit(f"error: checkpoint {checkpoint} could not be loaded")
    return TinyTransformer(ModelConfig()).to(device).eval(), "fresh model (no checkpoint found)"


def measure(
    model: Any, batch_size: int, iterations: int, device: Any, target: float = P95_TARGET_SECONDS
) -> dict[str, Any]:
    """Latency of ``iterations`` forward passes at ``batch_size`` (after 3 warm-up passes) against ``target``."""
    import torch

    x = torch.rand(batch_size, model.cfg.num_features, device=device)  # (B, F)
    timings = []
    with torch.inference_mode():
        for i in range(iterations + 3):
            start = time.perf_counter()
            model(x).argmax(dim=1).cpu()
            if i >= 3:
                timings.append(time.perf_counter() - start)
    p95 = percentile(timings, 0.95)
    return {
        "batch_size": batch_size,
        "iterations": iterations,
        "p50_seconds": statistics.median(timings),
        "p95_seconds": p95,
        "samples_per_second": batch_size * len(timings) / sum(timings),
        "meets_p95_target": p95 < target,
    }


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code (1 when a batch size misses the P95 target)."""
    import torch
    from torch.profiler import ProfilerActivity, profile

    from model.training import resolve_device

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", type=Path, help="checkpoint to load (default: newest verified)")
    parser.add_argument("--batch-sizes", default="1,32", help="comma-separated")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="20 iterations per batch size")
    parser.add_argument(
        "--p95-target-ms", type=float, default=P95_TARGET_SECONDS * 1e3, help="exit 1 above it"
    )
    args = parser.parse_args(argv)
    iterations = 20 if args.quick else args.iterations
    sizes = [int(v) for v in args.batch_sizes.split(",") if v.strip()]
    device = resolve_device(args.device)
    model, source = load_model(args.checkpoint, device)
    out = profile_dir() / f"inference_{timestamp()}"

    profiler = cProfile.Profile()
    profiler.enable()
    target = args.p95_target_ms / 1e3
    rows = [measure(model, b, iterations, device, target) for b in sizes]
    profiler.disable()
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(30)
    out.with_name(out.name + "_cprofile.txt").write_text(text.getvalue())

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    x = torch.rand(max(sizes), model.cfg.num_features, device=device)
    with profile(activities=activities, record_shapes=True) as prof, torch.inference_mode():
        for _ in range(min(iterations, 10)):
            model(x)
    sort_by = "cuda_time_total" if device.type == "cuda" else "cpu_time_total"
    out.with_name(out.name + "_torch_ops.txt").write_text(
        prof.key_averages().table(sort_by=sort_by, row_limit=25)
    )
    prof.export_chrome_trace(str(out.with_name(out.name + "_trace.json")))

    report = {"model": source, "device": str(device), "p95_target_seconds": target, "results": rows}
    path = write_json_report(report, "inference")
    print(f"inference on {device} with {source}")
    for r in rows:
        verdict = "ok" if r["meets_p95_target"] else f"MISSES the {target * 1e3:.0f} ms P95 target"
        print(
            f"  batch {r['batch_size']:>4}: p50 {r['p50_seconds'] * 1e3:.2f} ms, p95 {r['p95_seconds'] * 1e3:.2f} ms, "
            f"{r['samples_per_second']:.0f} samples/s ({verdict})"
        )
    print(f"report: {path} (+ {out.name}_cprofile.txt, _torch_ops.txt, _trace.json)")
    return 0 if all(r["meets_p95_target"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
