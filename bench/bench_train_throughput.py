"""Training-step throughput: the project's loop (model.training.train_task) vs a bare PyTorch loop.

Same model, batch size, data and device; repeats are interleaved and medians reported, so machine noise hits
both sides alike. Writes bench/results/train_throughput.json with both samples/s figures and their ratio.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _project_epochs(model, x, y, cfg, device, epochs: int) -> float:
    """Seconds for ``epochs`` epochs through the project's loop (naive strategy, no fine-tuning)."""
    from model.strategies import TaskContext, get_strategy
    from model.training import make_optimizer, train_task

    ctx = TaskContext(
        task_index=0,
        task_id="bench",
        classes=(0, 1),
        past_classes=(),
        scenario="class_incremental",
        num_classes=10,
    )
    run_cfg = cfg.__class__.from_dict({**cfg.to_dict(), "epochs": epochs})
    optimizer = make_optimizer(model, run_cfg)
    strategy = get_strategy("naive", model, run_cfg)
    started = time.perf_counter()
    train_task(model, optimizer, strategy, x, y, ctx, run_cfg, device)
    return time.perf_counter() - started


def _bare_epochs(model, x, y, batch_size: int, lr: float, epochs: int) -> float:
    """Seconds for ``epochs`` epochs of the textbook loop: shuffle, forward, cross-entropy, backward, step."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    started = time.perf_counter()
    for _ in range(epochs):
        for idx in torch.randperm(len(y)).split(batch_size):
            loss = F.cross_entropy(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    """Measure both loops side by side; write the JSON and print the ratio."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS / "train_throughput.json")
    args = parser.parse_args(argv)

    from model.config import ModelConfig, TrainConfig
    from model.data import load_task_csv, write_split_digits
    from model.network import TinyTransformer
    from model.training import resolve_device

    repeats, epochs = (2, 1) if args.quick else (args.repeats, 3)
    device = resolve_device("auto")
    cfg = TrainConfig(strategy="naive", finetune_epochs=0, log_every=10_000)
    with tempfile.TemporaryDirectory() as tmp:
        data = load_task_csv(write_split_digits(Path(tmp)).parent / "task_0.csv")
    x, y = data.x_train.to(device), data.y_train.to(device)
    torch.manual_seed(0)
    project_model = TinyTransformer(ModelConfig()).to(device)
    bare_model = TinyTransformer(ModelConfig()).to(device)
    bare_model.load_state_dict(project_model.state_dict())
    _project_epochs(project_model, x, y, cfg, device, 1)  # warm-up both (allocator, autograd graphs)
    _bare_epochs(bare_model, x, y, cfg.batch_size, cfg.lr, 1)
    project, bare = [], []
    for _ in range(repeats):
        project.append(len(y) * epochs / _project_epochs(project_model, x, y, cfg, device, epochs))
        bare.append(len(y) * epochs / _bare_epochs(bare_model, x, y, cfg.batch_size, cfg.lr, epochs))
    result = {
        "device": str(device),
        "batch_size": cfg.batch_size,
        "samples": len(y),
        "epochs_per_repeat": epochs,
        "repeats": repeats,
        "project_samples_per_second": statistics.median(project),
        "bare_samples_per_second": statistics.median(bare),
        "ratio": statistics.median(project) / statistics.median(bare),
        "torch_threads": torch.get_num_threads(),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2))
    print(
        f"project {result['project_samples_per_second']:.0f} samples/s, bare {result['bare_samples_per_second']:.0f}"
        f" samples/s, ratio {result['ratio']:.3f} (target >= 0.9) on {device}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
