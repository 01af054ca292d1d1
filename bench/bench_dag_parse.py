"""DAG file parse times: each file parsed in a fresh interpreter, median of repeats -> bench/results/dag_parse.json.

Each parse runs as Airflow 3's dag-processor runs it: Airflow imported first, then ``gc.freeze()`` (the
processor manager freezes its heap before it forks a parser, ``airflow/dag_processing/manager.py``), so a garbage
collection during the parse scans only what the DAG file allocates, not Airflow's whole heap; and with bytecode
caching on, in a private cache (``PYTHONPYCACHEPREFIX``; a deployed processor has ``__pycache__``), warmed by one
untimed parse. Without the freeze, whichever file happens to trigger a full collection pays ~130 ms for Airflow's
heap; without the cache, every parse recompiles the project's modules.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"

PROBE = """
import json, sys, time
sys.path.insert(0, {root!r})
from airflow.dag_processing.dagbag import DagBag
import gc
gc.freeze()
t0 = time.perf_counter()
bag = DagBag(dag_folder={path!r})
print(json.dumps({{"seconds": time.perf_counter() - t0, "dags": sorted(bag.dags), "errors": len(bag.import_errors)}}))
"""


def parse_once(path: Path, pycache: Path) -> dict:
    """Parse one DAG file in a fresh interpreter (airflow imported, heap frozen) and time the DagBag fill."""
    code = PROBE.format(root=str(ROOT), path=str(path))
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    """Time every DAG file; writes dag_parse.json with per-file median seconds."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="one repeat instead of five")
    parser.add_argument("--out", type=Path, default=RESULTS / "dag_parse.json")
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else 5
    rows = []
    pycache = Path(tempfile.mkdtemp(prefix="dag_parse_pycache_"))
    for path in sorted((ROOT / "dags").glob("*.py")):
        if not args.quick:
            parse_once(path, pycache)  # warm-up: fills the bytecode cache, not timed
        samples = [parse_once(path, pycache) for _ in range(repeats)]
        rows.append(
            {
                "file": path.name,
                "dags": samples[0]["dags"],
                "import_errors": samples[0]["errors"],
                "repeats": repeats,
                "median_seconds": statistics.median(s["seconds"] for s in samples),
                "max_seconds": max(s["seconds"] for s in samples),
            }
        )
        print(f"{path.name:32} median {rows[-1]['median_seconds'] * 1000:8.1f} ms  ({repeats} runs)")
    shutil.rmtree(pycache, ignore_errors=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps({"files": rows, "total_median_seconds": sum(r["median_seconds"] for r in rows)}, indent=2)
    )
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
