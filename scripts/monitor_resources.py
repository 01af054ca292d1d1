"""Resource monitoring (runbook "System Performance"): a psutil snapshot and py-spy stacks of a process.

    python scripts/monitor_resources.py --match include.serving           # find the app by command line
    python scripts/monitor_resources.py --pid 1234 --py-spy record --duration 10
    python scripts/monitor_resources.py --pid 1234 --py-spy top           # interactive, needs a terminal
    python scripts/monitor_resources.py --samples 5 --interval 2          # watch the host only

Each snapshot holds CPU per core, I/O wait, memory, swap, disk usage of the project's folders, GPUs
(``nvidia-smi``) and the watched processes. Written to ``reports_dir/profiles/resources_<ts>.json`` with the
py-spy output beside it. Exit 1 when a requested process is missing or py-spy fails.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from include.ops.perf import find_pids, profile_dir, py_spy, resource_snapshot, timestamp  # noqa: E402
from include.ops.settings import get_settings  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the exit code."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    target = parser.add_mutually_exclusive_group()
    target.add_argument("--pid", type=int, action="append", default=[], help="process to watch (repeatable)")
    target.add_argument("--match", help="watch processes whose command line contains this text")
    parser.add_argument("--samples", type=int, default=1)
    parser.add_argument(
        "--interval", type=float, default=1.0, help="seconds per sample (CPU is averaged over it)"
    )
    parser.add_argument("--py-spy", choices=("none", "dump", "record", "top"), default="dump")
    parser.add_argument("--duration", type=int, default=5, help="seconds of py-spy record")
    args = parser.parse_args(argv)

    pids = list(args.pid)
    if args.match:
        pids = find_pids(args.match)
        if not pids:
            print(f"error: no process matches {args.match!r}", file=sys.stderr)
            return 1
    if args.py_spy == "top":
        if not pids:
            parser.error("--py-spy top needs --pid or --match")
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        os.execv(exe, [exe, "top", "--pid", str(pids[0])])  # noqa: S606 - hand the terminal to py-spy

    settings = get_settings()
    disks = [settings.var_dir, settings.state_dir, settings.log_dir, settings.backup_dir]
    snapshots = []
    for i in range(max(1, args.samples)):
        snap = resource_snapshot(pids, disks, interval=args.interval)
        snapshots.append(snap)
        cores = " ".join(f"{p:.0f}" for p in snap["cpu"]["percent_per_core"])
        print(
            f"[{i + 1}] cpu% per core {cores} | iowait {snap['cpu']['iowait_percent']}% | "
            f"mem {snap['memory']['percent']}% | swap {snap['swap']['percent']}%"
        )
        for gpu in snap["gpus"]:
            print(
                f"    gpu{gpu['index']} {gpu['name']}: {gpu['utilization_percent']:.0f}% util, "
                f"{gpu['memory_used_bytes'] / 2**30:.1f}/{gpu['memory_total_bytes'] / 2**30:.1f} GiB"
            )
        for proc in snap["processes"]:
            if "error" in proc:
                print(f"    pid {proc['pid']}: {proc['error']}")
            else:
                print(
                    f"    pid {proc['pid']} {proc['name']}: cpu {proc['cpu_percent']:.0f}%, "
                    f"rss {proc['rss_bytes'] / 2**20:.0f} MiB, {proc['threads']} threads"
                )
        if i + 1 < args.samples:
            time.sleep(max(0.0, args.interval))

    failed = any("error" in p for s in snapshots for p in s["processes"])
    out_dir, stamp = profile_dir(settings), timestamp()
    spy: dict[str, dict] = {}
    if args.py_spy in ("dump", "record"):
        for pid in pids:
            target_file = out_dir / f"pyspy_{args.py_spy}_{pid}_{stamp}" if args.py_spy == "dump" else None
            flame = out_dir / f"pyspy_record_{pid}_{stamp}.svg"
            code, output = py_spy(pid, args.py_spy, args.duration, flame)
            if target_file is not None:
                target_file.with_suffix(".txt").write_text(output + "\n")
            spy[str(pid)] = {
                "exit_code": code,
                "file": str(target_file.with_suffix(".txt") if target_file else flame),
            }
            print(f"py-spy {args.py_spy} pid {pid}: exit {code}")
            print(output if args.py_spy == "dump" else f"    flame graph: {flame}")
            failed = failed or code != 0
    path = out_dir / f"resources_{stamp}.json"
    path.write_text(json.dumps({"pids": pids, "snapshots": snapshots, "py_spy": spy}, indent=2) + "\n")
    print(f"report: {path}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
