"""Serving benchmark: ``/predict`` end to end with dynamic batching vs one forward per request.

    python -m bench.bench_serving            # 10 s per server
    python -m bench.bench_serving --quick    # 3 s per server (what the test runs)

1. Trains a small checkpoint (Split-Digits task_0) into a temp state folder.
2. Serves it twice with uvicorn in a subprocess on 127.0.0.1 (``python -m include.serving``): with the dynamic
   batcher, then with ``CT_SERVING_BATCHING=false`` (naive: one forward per request, same app, same server).
   32 concurrent keep-alive clients (asyncio streams, one process) send one image per request for a fixed
   time; latency percentiles and throughput are measured on the client side, load generator included.
3. In process: the dynamic batcher against a loop of per-request forwards on the same model.

Writes ``bench/results/serving.json``; targets on 2 cores: P95 < 100 ms, throughput >= 2x naive,
in-process batching >= 3x.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from include.serving.server import ServerProcess

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "serving.json"
CLIENTS = 32
TARGETS = {"p95_ms": 100.0, "throughput_vs_naive": 2.0, "batching_speedup": 3.0}


def make_checkpoint(workdir: Path) -> Path:
    """Learn task_0 of Split-Digits briefly; returns the state folder holding the checkpoint."""
    from model.config import TrainConfig
    from model.data import write_split_digits
    from model.learner import ContinualLearner

    manifest = write_split_digits(workdir / "data")
    cfg = TrainConfig(epochs=1, max_samples_per_task=64, finetune_epochs=0)
    ContinualLearner(manifest, workdir / "state", train_cfg=cfg).learn_task("task_0")
    return workdir / "state"


def sample_images(n: int = 64) -> list[list[int]]:
    """Real digits (test rows of task_0..4) as 64 ints 0..16."""
    from sklearn.datasets import load_digits

    return load_digits().data[:n].astype(int).tolist()


def server_env(workdir: Path, state: Path, batching: bool) -> dict[str, str]:
    """Environment of one benchmarked server: the temp state, no registry (serves the checkpoint)."""
    return {
        "CT_VAR_DIR": str(workdir / "var"),
        "CT_STATE_DIR": str(state),
        "CT_LOG_DIR": str(workdir / "logs"),
        "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'no-registry.db'}",  # absent: serve the checkpoint
        "CT_SERVING_BATCHING": "true" if batching else "false",
    }


def _request_bytes(port: int, body: bytes) -> bytes:
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(
    port: int, payloads: list[bytes], stop_at: float, latencies: list[float], errors: list[str]
) -> None:
    """One keep-alive connection sending requests back to back until ``stop_at``."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    i = 0
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(payloads[i % len(payloads)])
            i += 1
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            body = await reader.readexactly(length)
            latencies.append(time.perf_counter() - start)
            if status != 200 or b'"classes"' not in body:
                errors.append(f"{status}: {body[:200]!r}")
    finally:
        writer.close()


async def _load(
    port: int, images: list[list[int]], clients: int, seconds: float, warmup: float
) -> dict[str, Any]:
    payloads = [_request_bytes(port, json.dumps({"instances": [img]}).encode()) for img in images]
    await asyncio.gather(
        *[_client(port, payloads, time.perf_counter() + warmup, [], []) for _ in range(clients)]
    )
    latencies: list[float] = []
    errors: list[str] = []
    start = time.perf_counter()
    stop_at = start + seconds
    await asyncio.gather(*[_client(port, payloads, stop_at, latencies, errors) for _ in range(clients)])
    elapsed = time.perf_counter() - start
    ms = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:3],
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "throughput_rps": round(len(latencies) / elapsed, 1),
    }


def end_to_end(workdir: Path, state: Path, batching: bool, images: list[list[int]], seconds: float) -> dict:
    """Load one server (batching on/off) with ``CLIENTS`` concurrent clients."""
    with ServerProcess(server_env(workdir, state, batching)) as server:
        return asyncio.run(_load(server.port, images, CLIENTS, seconds, warmup=min(2.0, seconds / 3)))


def in_process(state: Path, images: list[list[int]], seconds: float) -> dict[str, Any]:
    """Dynamic batcher vs one forward per request, same model, same 32 concurrent submitters."""
    from include.ops.settings import ServingSettings, get_settings
    from include.serving.batcher import DynamicBatcher
    from include.serving.registry import ModelStore

    os.environ["CT_STATE_DIR"] = str(state)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{state / 'absent.db'}"
    serving = ServingSettings()
    if serving.torch_threads:
        import torch

        torch.set_num_threads(serving.torch_threads)  # as the app does at start-up
    store = ModelStore(get_settings(), serving)
    store.load()
    rows = [np.asarray([img], dtype=np.float32) for img in images]

    start = time.perf_counter()
    done = 0
    while time.perf_counter() - start < seconds:
        store.predict(rows[done % len(rows)])
        done += 1
    bare_rps = done / (time.perf_counter() - start)

    async def batched() -> tuple[float, float]:
        batcher = DynamicBatcher(store.predict, serving.max_batch_size, serving.batch_timeout_ms)
        await batcher.start()
        count = 0
        stop_at = time.perf_counter() + seconds

        async def worker(k: int) -> None:
            nonlocal count
            while time.perf_counter() < stop_at:
                await batcher.submit(rows[(k + count) % len(rows)])
                count += 1

        t0 = time.perf_counter()
        await asyncio.gather(*[worker(k) for k in range(CLIENTS)])
        elapsed = time.perf_counter() - t0
        mean_batch = batcher.rows / max(1, batcher.batches)
        await batcher.stop()
        return count / elapsed, mean_batch

    batched_rps, mean_batch = asyncio.run(batched())
    return {
        "bare_forward_rps": round(bare_rps, 1),
        "batched_rps": round(batched_rps, 1),
        "mean_batch_size": round(mean_batch, 1),
        "batching_speedup": round(batched_rps / bare_rps, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print a summary, write ``bench/results/serving.json``; exit 0 even if a target is missed."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="3 s per measurement instead of 10 s")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    seconds = 3.0 if args.quick else 10.0
    images = sample_images()
    with tempfile.TemporaryDirectory(prefix="bench-serving-") as tmp:
        workdir = Path(tmp)
        state = make_checkpoint(workdir)
        batched = end_to_end(workdir, state, True, images, seconds)
        naive = end_to_end(workdir, state, False, images, seconds)
        local = in_process(state, images, seconds)
    result = {
        "clients": CLIENTS,
        **{k: batched[k] for k in ("p50_ms", "p95_ms", "p99_ms", "throughput_rps", "requests", "errors")},
        "naive_p50_ms": naive["p50_ms"],
        "naive_p95_ms": naive["p95_ms"],
        "naive_throughput_rps": naive["throughput_rps"],
        "naive_errors": naive["errors"],
        "throughput_vs_naive": round(batched["throughput_rps"] / naive["throughput_rps"], 2),
        **local,
        "targets": TARGETS,
        "targets_met": {
            "p95_ms": batched["p95_ms"] < TARGETS["p95_ms"],
            "throughput_vs_naive": batched["throughput_rps"]
            >= TARGETS["throughput_vs_naive"] * naive["throughput_rps"],
            "batching_speedup": local["batching_speedup"] >= TARGETS["batching_speedup"],
        },
        "seconds_per_measurement": seconds,
        "quick": args.quick,
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "error_samples": batched["error_samples"] + naive["error_samples"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"/predict, {CLIENTS} clients, {seconds:g} s each, {os.cpu_count()} CPUs (load generator included)")
    print(f"  batched : p50 {result['p50_ms']} ms  p95 {result['p95_ms']} ms  p99 {result['p99_ms']} ms  "
          f"{result['throughput_rps']} req/s")  # fmt: skip
    print(f"  naive   : p50 {naive['p50_ms']} ms  p95 {naive['p95_ms']} ms  {naive['throughput_rps']} req/s")
    print(f"  throughput vs naive: {result['throughput_vs_naive']}x")
    print(f"in process: bare forward {local['bare_forward_rps']} req/s, batcher {local['batched_rps']} req/s "
          f"(mean batch {local['mean_batch_size']}) -> {local['batching_speedup']}x")  # fmt: skip
    print(f"targets met: {result['targets_met']}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
