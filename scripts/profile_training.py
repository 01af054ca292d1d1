"""Profile training (runbook "Performance Degradation"): cProfile of a real task and the torch profiler's op view.

    python scripts/profile_training.py                 # one task, 2 epochs, 512 samples
    python scripts/profile_training.py --quick         # seconds; what the tests run
    nsys profile --output=profile.nsys python scripts/profile_training.py

Never touches the live learner state: the task is learned into a throw-away state folder. Writes to
``reports_dir/profiles/``: ``training_<ts>.prof`` (open with snakeviz / pstats), ``training_<ts>_cprofile.txt``
(top functions by cumulative time), ``training_<ts>_torch_ops.txt`` (op table) and
``training_<ts>_trace.json`` (chrome://tracing / Perfetto), plus a JSON summary.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.ops.perf import profile_dir, timestamp, write_json_report  # noqa: E402
from include.ops.settings import get_settings  # noqa: E402
from include.ops.task_manifest import resolve_task_manifest  # noqa: E402


def _manifest(tmp: Path) -> Path:
    """The manifest training reads, or a freshly written Split-Digits stream when none exists yet."""
    path = resolve_task_manifest(get_settings())
    if path.exists():
        return path
    from model.data import write_split_digits

    return write_split_digits(tmp / "data")


def cprofile_learn(
    manifest: Path, state_dir: Path, task_id: str | None, overrides: dict[str, Any], out: Path
) -> dict:
    """Learn one task under cProfile into ``state_dir``; write ``out``.prof / _cprofile.txt; return a summary."""
    from model.config import TrainConfig
    from model.learner import ContinualLearner

    learner = ContinualLearner(manifest, state_dir, train_cfg=TrainConfig.from_dict(overrides))
    task_id = task_id or learner.manifest.tasks[0].task_id
    profiler = cProfile.Profile()
    start = time.perf_counter()
    profiler.enable()
    result = learner.learn_task(task_id)
    profiler.disable()
    seconds = time.perf_counter() - start
    profiler.dump_stats(out.with_suffix(".prof"))
    text = io.StringIO()
    pstats.Stats(profiler, stream=text).sort_stats("cumulative").print_stats(40)
    out.with_name(out.name + "_cprofile.txt").write_text(text.getvalue())
    return {
        "task_id": task_id,
        "seconds": seconds,
        "device": result.device,
        "train_seconds": result.train_seconds,
    }


def torch_profile_steps(steps: int, batch_size: int, out: Path, device: str = "auto") -> dict:
    """Run ``steps`` training steps of the network under torch.profiler; write the op table and a trace."""
    import torch
    import torch.nn.functional as F
    from torch.profiler import ProfilerActivity, profile, record_function

    from model.config import ModelConfig, TrainConfig
    from model.network import TinyTransformer
    from model.training import autocast, make_optimizer, resolve_device

    dev = resolve_device(device)
    cfg = TrainConfig()
    model = TinyTransformer(ModelConfig()).to(dev).train()
    optimizer = make_optimizer(model, cfg)
    x = torch.rand(batch_size, model.cfg.num_features, device=dev)  # (B, F)
    y = torch.randint(0, model.cfg.num_classes, (batch_size,), device=dev)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if dev.type == "cuda" else [])
    with profile(activities=activities, record_shapes=True, profile_memory=True) as prof:
        for _ in range(steps):
            with record_function("train_step"):
                with autocast(dev, cfg.mixed_precision):
                    loss = F.cross_entropy(model(x).float(), y)
                loss.backward()
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
    sort_by = "cuda_time_total" if dev.type == "cuda" else "cpu_time_total"
    table = prof.key_averages().table(sort_by=sort_by, row_limit=30)
    out.with_name(out.name + "_torch_ops.txt").write_text(table)
    prof.export_chrome_trace(str(out.with_name(out.name + "_trace.json")))
    return {"device": str(dev), "steps": steps, "batch_size": batch_size, "sorted_by": sort_by}


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task-id", help="task to learn (default: the manifest's first)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--max-samples", type=int, default=512, help="training samples of the task")
    parser.add_argument("--torch-steps", type=int, default=20, help="steps traced by the torch profiler")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--quick", action="store_true", help="1 epoch, 64 samples, 3 traced steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.epochs, args.max_samples, args.torch_steps = 1, 64, 3
    overrides = {
        "epochs": args.epochs,
        "max_samples_per_task": args.max_samples,
        "finetune_epochs": min(args.epochs, 2),
        "batch_size": args.batch_size,
        "device": args.device,
    }
    out = profile_dir() / f"training_{timestamp()}"
    with tempfile.TemporaryDirectory(prefix="ct-profile-") as tmp:
        learn = cprofile_learn(_manifest(Path(tmp)), Path(tmp) / "state", args.task_id, overrides, out)
    ops = torch_profile_steps(args.torch_steps, args.batch_size, out, args.device)
    summary = {
        "learn": learn,
        "torch_profiler": ops,
        "files": sorted(str(p) for p in out.parent.glob(out.name + "*")),
    }
    report = write_json_report(summary, "training_summary")
    print(f"learned {learn['task_id']} in {learn['seconds']:.2f}s on {learn['device']} under cProfile")
    for path in summary["files"]:
        print(f"  {path}")
    print(f"summary: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
