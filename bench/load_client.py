"""The serving bench's load generator, run as its own process: N keep-alive clients POST one body back to back.

    python -m bench.load_client --port 8000 --path /predict --clients 32 --seconds 3 --body '{"instances": [...]}'

Prints one JSON object: accepted (200) latency percentiles, requests per second of accepted requests, shed
(503) and error counts, the shed rate. A shed client waits out ``Retry-After`` (``--no-retry-after``: it
retries at once, the worst case for the server).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from typing import Any

import numpy as np


def _request_bytes(port: int, path: str, body: bytes) -> bytes:
    head = (
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _client(
    port: int, payload: bytes, stop_at: float, out: dict[str, Any], honor_retry_after: bool = True
) -> None:
    """One keep-alive connection sending ``payload`` back to back until ``stop_at`` (reconnects on close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        while time.perf_counter() < stop_at:
            start = time.perf_counter()
            writer.write(payload)
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            lines = head.lower().split(b"\r\n")
            length = next(int(line.split(b":", 1)[1]) for line in lines if line.startswith(b"content-length"))
            body = await reader.readexactly(length)
            elapsed = time.perf_counter() - start
            if status == 200:
                out["latencies"].append(elapsed)
            elif status == 503:
                out["shed"] += 1
                retry = next(
                    (line.split(b":", 1)[1] for line in lines if line.startswith(b"retry-after")), None
                )
                if retry is not None and honor_retry_after:
                    await asyncio.sleep(max(0.0, min(float(retry), stop_at - time.perf_counter())))
            else:
                out["errors"].append(f"{status}: {body[:200]!r}")
            if any(line.startswith(b"connection: close") for line in lines):
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()


async def load(
    port: int,
    path: str,
    body: bytes,
    clients: int,
    seconds: float,
    warmup: float,
    honor_retry_after: bool = True,
) -> dict[str, Any]:
    """Warm up, then measure ``clients`` concurrent clients for ``seconds``; the summary as a dict."""
    payload = _request_bytes(port, path, body)
    scratch: dict[str, Any] = {"latencies": [], "shed": 0, "errors": []}
    await asyncio.gather(
        *[_client(port, payload, time.perf_counter() + warmup, scratch) for _ in range(clients)]
    )
    out: dict[str, Any] = {"latencies": [], "shed": 0, "errors": []}
    start = time.perf_counter()
    await asyncio.gather(
        *[_client(port, payload, start + seconds, out, honor_retry_after) for _ in range(clients)]
    )
    elapsed = time.perf_counter() - start
    ms = np.array(out["latencies"] or [0.0]) * 1000
    accepted = len(out["latencies"])
    attempts = accepted + out["shed"] + len(out["errors"])
    return {
        "path": path,
        "clients": clients,
        "requests": accepted,
        "shed": out["shed"],
        "errors": len(out["errors"]),
        "error_samples": out["errors"][:3],
        "shed_rate": round(out["shed"] / attempts, 4) if attempts else 0.0,
        "p50_ms": round(float(np.percentile(ms, 50)), 2),
        "p95_ms": round(float(np.percentile(ms, 95)), 2),
        "p99_ms": round(float(np.percentile(ms, 99)), 2),
        "throughput_rps": round(accepted / elapsed, 1),
        "seconds": round(elapsed, 2),
    }


def main(argv: list[str] | None = None) -> int:
    """Run one load and print its JSON summary."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/predict")
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    parser.add_argument("--body", required=True, help="the JSON body every request sends")
    parser.add_argument("--no-retry-after", action="store_true", help="a shed client retries at once")
    args = parser.parse_args(argv)
    result = asyncio.run(
        load(args.port, args.path, args.body.encode(), args.clients, args.seconds, args.warmup,
             not args.no_retry_after)
    )  # fmt: skip
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
