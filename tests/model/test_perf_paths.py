"""The runbook's performance knobs ("Performance Tuning") exist in the model code and run on CPU, and the
profiling scripts the monthly maintenance calls work in their quick mode.

Each knob is exercised on CPU: CUDA-only effects are checked through what they are built with, and the fp16
GradScaler and DataLoader-worker paths run for real and must reproduce the plain path exactly.
"""

from __future__ import annotations

import contextlib
import dataclasses
import importlib.util
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from include.ops import perf
from model import training
from model.config import ModelConfig, TrainConfig
from model.network import TinyTransformer
from model.strategies import TaskContext, get_strategy
from model.training import (
    autocast,
    configure_backends,
    make_grad_scaler,
    make_optimizer,
    train_task,
)
from tests.paths import ROOT

FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}


def _one_task_step(cfg: TrainConfig, n: int = 32) -> tuple[list[float], int]:
    """Train one epoch of ``n`` random samples on CPU; return the epoch losses and the optimizer steps taken."""
    torch.manual_seed(0)
    model = TinyTransformer(ModelConfig())
    optimizer = make_optimizer(model, cfg)
    steps = 0
    original = optimizer.step

    def counting_step(*args, **kwargs):
        nonlocal steps
        steps += 1
        return original(*args, **kwargs)

    optimizer.step = counting_step  # type: ignore[method-assign]
    ctx = TaskContext(0, "t0", (0, 1), (), "class_incremental", 10)
    x, y = torch.rand(n, 64), torch.randint(0, 2, (n,))
    losses = train_task(
        model, optimizer, get_strategy("naive", model, cfg), x, y, ctx, cfg, torch.device("cpu")
    )
    return losses, steps


def test_runbook_knobs_exist_on_train_config() -> None:
    assert {"mixed_precision", "compile", "grad_accum_steps", "device", "batch_size"} <= FIELDS
    assert TrainConfig().compile is False, "torch.compile must stay opt-in (slow start on CPU)"


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_mixed_precision_is_bf16_autocast_on_cuda_and_off_on_cpu() -> None:
    assert isinstance(autocast(torch.device("cpu"), True), contextlib.nullcontext)
    ctx = autocast(torch.device("cuda"), True)
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16
    assert isinstance(autocast(torch.device("cuda"), False), contextlib.nullcontext)


def test_gradient_accumulation_takes_fewer_optimizer_steps() -> None:
    base = dict(epochs=1, batch_size=4, finetune_epochs=0, strategy="naive", warmup_frac=0.0)
    losses1, steps1 = _one_task_step(TrainConfig(**base, grad_accum_steps=1), n=16)
    losses4, steps4 = _one_task_step(TrainConfig(**base, grad_accum_steps=4), n=16)
    assert (steps1, steps4) == (4, 1)
    assert all(math.isfinite(v) for v in losses1 + losses4)


def test_compile_option_trains_a_step_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """TrainConfig(compile=True) goes through torch.compile; CPU uses the aot_eager backend here (graph capture
    and AOT autograd of forward+backward) because inductor's C++ build takes ~1 min on 2 cores.
    Set CT_TEST_INDUCTOR=1 to compile with the default backend."""
    compiled: list[torch.nn.Module] = []
    real_compile = torch.compile

    def tracking_compile(model, **kwargs):
        compiled.append(model)
        if not os.environ.get("CT_TEST_INDUCTOR"):
            kwargs.setdefault("backend", "aot_eager")
        return real_compile(model, **kwargs)

    monkeypatch.setattr(torch, "compile", tracking_compile)
    torch._dynamo.reset()
    losses, steps = _one_task_step(
        TrainConfig(epochs=1, batch_size=16, finetune_epochs=0, strategy="naive", compile=True)
    )
    assert len(compiled) == 1 and isinstance(compiled[0], TinyTransformer)
    assert steps == 2 and math.isfinite(losses[0])


def test_cudnn_benchmark_knob_sets_the_backend_on_cuda_only() -> None:
    before = torch.backends.cudnn.benchmark
    try:
        for value in (True, False):
            configure_backends(torch.device("cuda"), TrainConfig(cudnn_benchmark=value))
            assert torch.backends.cudnn.benchmark is value
        torch.backends.cudnn.benchmark = False
        configure_backends(torch.device("cpu"), TrainConfig(cudnn_benchmark=True))
        assert torch.backends.cudnn.benchmark is False, "a CPU run must not flip process-wide CUDA state"
    finally:
        torch.backends.cudnn.benchmark = before
    assert TrainConfig().cudnn_benchmark is True


@pytest.mark.filterwarnings("ignore:CUDA is not available")
def test_fp16_autocast_gets_a_grad_scaler_and_bf16_does_not(monkeypatch: pytest.MonkeyPatch) -> None:
    ctx = autocast(torch.device("cuda"), True, "fp16")
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.float16
    made: list[tuple[str, bool]] = []
    real = torch.amp.GradScaler

    def spy(device: str, enabled: bool = True, **kwargs):
        made.append((device, enabled))
        return real("cpu", enabled=False)

    monkeypatch.setattr(torch.amp, "GradScaler", spy)
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    make_grad_scaler(cuda, TrainConfig(amp_dtype="fp16"))
    make_grad_scaler(cuda, TrainConfig(amp_dtype="bf16"))
    make_grad_scaler(cuda, TrainConfig(amp_dtype="fp16", mixed_precision=False))
    make_grad_scaler(cpu, TrainConfig(amp_dtype="fp16"))
    assert made == [("cuda", True), ("cuda", False), ("cuda", False), ("cpu", False)]
    with pytest.raises(ValueError, match="amp_dtype"):
        TrainConfig(amp_dtype="fp8")


def test_an_enabled_grad_scaler_unscales_before_clipping(monkeypatch: pytest.MonkeyPatch) -> None:
    """The scaler path for real on CPU: with a power-of-two scale, scale -> unscale is exact, so an enabled
    scaler must reproduce the unscaled run bit for bit; clipping scaled gradients (unscale_ missing or
    late) or skipping steps would change the losses."""
    cfg = TrainConfig(epochs=3, batch_size=8, finetune_epochs=0, strategy="naive", grad_clip=0.5)
    plain, plain_steps = _one_task_step(cfg)
    scalers: list[torch.amp.GradScaler] = []

    def enabled_scaler(device: torch.device, cfg: TrainConfig) -> torch.amp.GradScaler:
        scalers.append(torch.amp.GradScaler("cpu", init_scale=2.0**12, enabled=True))
        return scalers[-1]

    monkeypatch.setattr(training, "make_grad_scaler", enabled_scaler)
    scaled, scaled_steps = _one_task_step(cfg)
    assert len(scalers) == 1 and scalers[0].is_enabled() and scalers[0].get_scale() == 2.0**12
    assert scaled_steps == plain_steps == 12
    assert scaled == plain


def test_dataloader_workers_path_matches_the_in_memory_path(monkeypatch: pytest.MonkeyPatch) -> None:
    """num_workers > 0 feeds the same batches through a persistent-worker DataLoader (pinned memory on CUDA
    only), so the losses match the sliced path exactly."""
    base = dict(epochs=3, batch_size=8, finetune_epochs=0, strategy="naive")
    sliced, _ = _one_task_step(TrainConfig(**base))
    loaders: list[dict] = []
    real = torch.utils.data.DataLoader

    class SpyLoader(real):
        def __init__(self, *args, **kwargs):
            loaders.append(kwargs)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(torch.utils.data, "DataLoader", SpyLoader)
    loaded, _ = _one_task_step(TrainConfig(**base, num_workers=2))
    assert len(loaders) == 1, "one DataLoader per phase, reused by every epoch"
    kw = loaders[0]
    assert (kw["num_workers"], kw["persistent_workers"], kw["pin_memory"]) == (2, True, False)
    assert loaded == sliced
    with pytest.raises(ValueError, match="num_workers"):
        TrainConfig(num_workers=-1)


# ---- the maintenance-facing perf API and the scripts -----------------------------------------------------


def test_recommend_batch_size_picks_the_smallest_near_the_best() -> None:
    rows = [
        {"batch_size": 16, "status": "ok", "samples_per_second": 100.0},
        {"batch_size": 32, "status": "ok", "samples_per_second": 185.0},
        {"batch_size": 64, "status": "ok", "samples_per_second": 200.0},
        {"batch_size": 128, "status": "oom"},
    ]
    assert perf.recommend_batch_size(rows, 0.9)[0] == 32
    assert perf.recommend_batch_size(rows, 0.95)[0] == 64
    assert perf.recommend_batch_size([{"batch_size": 8, "status": "oom"}]) == (
        None,
        "no batch size completed",
    )


def test_batch_size_sweep_measures_train_and_inference(ct_env: Path) -> None:
    for mode in ("train", "inference"):
        report = perf.batch_size_sweep([32, 8], mode=mode, steps=2, warmup=1, device="cpu")
        assert report["mode"] == mode and report["device"] == "cpu"
        assert [r["batch_size"] for r in report["results"]] == [8, 32]
        assert all(r["status"] == "ok" and r["samples_per_second"] > 0 for r in report["results"])
        assert report["recommended_batch_size"] in (8, 32) and report["param_count"] > 0
    with pytest.raises(ValueError, match="mode"):
        perf.batch_size_sweep([8], mode="serve")
    path = perf.write_json_report(report, "sweep")
    assert (
        path.parent == ct_env / "reports" / "profiles" and json.loads(path.read_text())["mode"] == "inference"
    )


def _script_main(name: str):
    spec = importlib.util.spec_from_file_location(f"ct_script_{name}", ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


def test_profiling_scripts_quick_mode(ct_env: Path, capsys: pytest.CaptureFixture) -> None:
    out = ct_env / "reports" / "profiles"
    assert _script_main("profile_training")(["--quick"]) == 0
    assert _script_main("profile_inference")(["--quick", "--p95-target-ms", "60000"]) == 0
    names = sorted(p.name for p in out.iterdir())
    for prefix, suffixes in (
        ("training_", (".prof", "_cprofile.txt", "_torch_ops.txt", "_trace.json")),
        ("inference_", ("_cprofile.txt", "_torch_ops.txt", "_trace.json")),
    ):
        for suffix in suffixes:
            assert any(n.startswith(prefix) and n.endswith(suffix) for n in names), (prefix, suffix, names)
    cprofile = next(out.glob("training_*_cprofile.txt")).read_text()
    assert "learn_task" in cprofile and "cumulative" in cprofile
    trace = json.loads(next(out.glob("training_*_trace.json")).read_text())
    assert any(e.get("name") == "train_step" for e in trace["traceEvents"])
    inference = json.loads(
        next(p for p in out.glob("inference_*.json") if "_trace" not in p.name).read_text()
    )
    assert inference["model"].startswith("fresh model") and {
        r["batch_size"] for r in inference["results"]
    } == {1, 32}
    assert "training_summary" in "".join(names)
    # the live learner state was not touched by the training profile
    assert not (ct_env / "state" / "checkpoints").exists() or not any(
        (ct_env / "state" / "checkpoints").iterdir()
    )


def test_optimize_batch_size_runs_as_the_runbook_calls_it(ct_env: Path) -> None:
    env = {**os.environ, "PYTHONPATH": ""}  # the script finds the project by itself
    proc = subprocess.run(
        [sys.executable, "scripts/optimize_batch_size.py", "--quick", "--device", "cpu"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "recommended batch size:" in proc.stdout
    report = json.loads(next((ct_env / "reports" / "profiles").glob("batch_size_train_*.json")).read_text())
    assert [r["batch_size"] for r in report["results"]] == [16, 64]


def test_monitor_resources_snapshots_and_py_spy_dumps_a_process(ct_env: Path) -> None:
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\ndef ct_marker_loop():\n    while True: time.sleep(0.05)\nct_marker_loop()",
        ],
        start_new_session=True,
    )
    try:
        time.sleep(0.5)
        proc = subprocess.run(
            [sys.executable, "scripts/monitor_resources.py", "--pid", str(child.pid), "--interval", "0.2"],
            cwd=ROOT,
            env=os.environ,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        child.kill()
        child.wait()
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "ct_marker_loop" in proc.stdout
    out = ct_env / "reports" / "profiles"
    report = json.loads(next(out.glob("resources_*.json")).read_text())
    snap = report["snapshots"][0]
    assert snap["processes"][0]["pid"] == child.pid and snap["processes"][0]["rss_bytes"] > 0
    assert len(snap["cpu"]["percent_per_core"]) == os.cpu_count()
    assert "ct_marker_loop" in next(out.glob(f"pyspy_dump_{child.pid}_*.txt")).read_text()
    gone = subprocess.run(
        [
            sys.executable,
            "scripts/monitor_resources.py",
            "--pid",
            str(child.pid),
            "--py-spy",
            "none",
            "--interval",
            "0.1",
        ],
        cwd=ROOT,
        env=os.environ,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert gone.returncode == 1 and "NoSuchProcess" in gone.stdout
