"""Training crash matrix: SIGKILL the training at every fault step, rerun, and count what went wrong.

    python -m include.ops.chaos_training --epochs 1 --tasks 2 --max-samples 64

Each case starts from an empty state folder, learns ``--tasks`` tasks one after another and kills the
training of task ``kill_index`` once, at one step of ``model.faults.TRAINING_STEPS`` (``CT_FAULT_AT``): tracked
``learn_one`` then ``register_and_gate``, as the DAG's ``train`` and ``register`` tasks run them, in a child
process that SIGKILLs itself (children are forked from one helper subprocess, so torch and MLflow are
imported once for the whole matrix). The rerun, in this process, is a ``retry`` (the same run id, as an
Airflow retry) or a ``new_run`` (new triggers, tasks planned by ``plan_tasks`` as the DAG does). A case
passes when the stream completes, no task has two learned runs, no task two model versions, every learned
run a gated version, and no MLflow run is left RUNNING. The table (and ``--json``) lists each case; the exit
code is 1 when any case failed. ``make chaos`` runs the full matrix, ``make test`` a small one
(``tests/ops/test_training_faults.py``).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from include.ops.settings import _DERIVED_DIRS, PROJECT_ROOT, Settings

MODES = ("retry", "new_run")


def case_settings(var_dir: Path) -> Settings:
    """Settings of one case: every location under ``var_dir``, its own MLflow store."""
    derived = dict.fromkeys((*_DERIVED_DIRS, "lock_file"))  # None: under var_dir, whatever the env says
    uri = f"sqlite:///{var_dir / 'mlflow' / 'mlflow.db'}"
    return Settings(var_dir=var_dir, mlflow_tracking_uri=uri, **derived)


def _env() -> dict[str, str]:
    """The killer's environment: no CT_* of the caller (each job names its own locations), one torch thread."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CT_") and k != "MLFLOW_TRACKING_URI"}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(PROJECT_ROOT))
    return env


def _run_jobs_forked(jobs: list[dict[str, Any]]) -> list[int]:
    """Run each kill job in a forked child of this process; returns the children's exit codes.

    One interpreter imports torch and MLflow once; every job is still its own process, SIGKILLed for real.
    This parent opens no MLflow store or torch thread before forking, so a child inherits none."""
    import matplotlib.pyplot  # noqa: F401  (the imports every child needs, paid once)
    import mlflow.pyfunc  # noqa: F401
    import mlflow.store.model_registry.sqlalchemy_store  # noqa: F401
    import mlflow.store.tracking.sqlalchemy_store  # noqa: F401
    import torch

    import include.ops.data_quality  # noqa: F401
    import include.ops.training  # noqa: F401
    import model.learner  # noqa: F401
    from model import faults

    torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))])  # its first use imports torch._dynamo (seconds)

    codes = []
    for job in jobs:
        pid = os.fork()
        if pid == 0:  # the child: arm the fault, train as the tracked CLI does; the fault ends it
            code = 3
            try:
                os.environ[faults.ENV_VAR] = job["step"]
                faults.armed_step.cache_clear()
                _learn(case_settings(Path(job["var_dir"])), job["task_id"], job["train_cfg"], job["dag_run_id"],
                       _run_settings(job["train_cfg"]))  # fmt: skip
                code = 0
            except BaseException:
                import traceback

                traceback.print_exc()
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
        codes.append(-os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status))
    return codes


def killed_trainings(jobs: list[dict[str, Any]]) -> list[int]:
    """Run the kill jobs (``var_dir``, ``task_id``, ``dag_run_id``, ``train_cfg``, ``step``) in one subprocess."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as fh:
        json.dump(jobs, fh)
    try:
        done = subprocess.run(
            [sys.executable, "-m", "include.ops.chaos_training", "--kill-jobs", fh.name],
            cwd=PROJECT_ROOT,
            env=_env(),
            capture_output=True,
            text=True,
            timeout=600,
        )
    finally:
        os.unlink(fh.name)
    if done.returncode != 0:
        raise RuntimeError(f"the kill jobs failed: {done.stderr[-3000:]}")
    codes = json.loads(done.stdout.strip().splitlines()[-1])
    for job, code in zip(jobs, codes, strict=True):
        if code != -signal.SIGKILL:
            raise RuntimeError(
                f"{job['task_id']} at {job['step']} exited {code}, not killed: {done.stderr[-3000:]}"
            )
    return codes


def _run_settings(train_cfg: dict) -> Any:
    """The run settings of every case: the gate always passes (the matrix counts records, not quality)."""
    from include.ops.run_settings import RunSettings

    return RunSettings(retention_threshold=0.0, accuracy_floor=0.0, train_config=train_cfg, sources={})


def _learn(settings: Settings, task_id: str, train_cfg: dict, dag_run_id: str, run: Any) -> None:
    """Learn, record, register and gate one task in this process, as the DAG's train and register do."""
    from include.ops.training import learn_one, register_and_gate

    register_and_gate(settings, [learn_one(settings, task_id, train_cfg, "chaos", dag_run_id)], run)


def audit(settings: Settings, task_ids: list[str]) -> dict[str, Any]:
    """What the stores hold: learned twice, registered twice, ungated, RUNNING runs, orphans tagged."""
    from include.ops import tracking, training_recovery

    mlc = tracking.mlflow_client(settings)
    exp = mlc.get_experiment_by_name(settings.mlflow_experiment)
    runs = mlc.search_runs([exp.experiment_id], max_results=5000)
    learned = collections.Counter(
        r.data.tags.get(tracking.TAG_TASK_ID)
        for r in runs
        if r.data.tags.get(tracking.TAG_STATUS) == tracking.STATUS_LEARNED
    )
    versions = mlc.search_model_versions(f"name = '{settings.registered_model}'")
    registered = collections.Counter(mv.tags.get("task_id") for mv in versions)
    return {
        "completed": tracking.learned_task_ids(settings) == task_ids,
        "learned_twice": sorted(t for t, n in learned.items() if n > 1),
        "registered_twice": sorted(t for t, n in registered.items() if n > 1),
        "ungated": len(training_recovery.pending_registrations(settings)),
        "running": sum(r.info.status == "RUNNING" for r in runs),
        "orphans_marked": sum(training_recovery.TAG_ORPHANED in r.data.tags for r in runs),
        "recovered": sum(training_recovery.TAG_RECOVERED in r.data.tags for r in runs),
    }


@dataclass
class Case:
    """One cell of the matrix: kill task ``kill_index`` of a ``tasks``-task stream at ``step``, rerun by ``mode``."""

    step: str
    mode: str
    var_dir: Path
    tasks: int = 2
    kill_index: int = 0
    epochs: int = 1
    max_samples: int = 64

    @property
    def task_ids(self) -> list[str]:
        """The tasks this case's stream learns, in order."""
        return [f"task_{i}" for i in range(self.tasks)]

    @property
    def train_cfg(self) -> dict[str, Any]:
        """The TrainConfig every training of the case uses."""
        from model.config import TrainConfig

        return TrainConfig(
            strategy="replay", epochs=self.epochs, max_samples_per_task=self.max_samples
        ).to_dict()


def prepare(case: Case) -> dict[str, Any]:
    """Write the data, learn the tasks before the killed one; returns the kill job of the case."""
    from model.data import write_split_digits

    assert case.mode in MODES and 0 <= case.kill_index < case.tasks <= 5, case
    settings = case_settings(case.var_dir)
    write_split_digits(settings.data_dir)
    for i in range(case.kill_index):
        _learn(settings, case.task_ids[i], case.train_cfg, f"chaos__{i}", _run_settings(case.train_cfg))
    return {
        "var_dir": str(case.var_dir),
        "task_id": case.task_ids[case.kill_index],
        "dag_run_id": f"chaos__{case.kill_index}",
        "train_cfg": case.train_cfg,
        "step": case.step,
    }


def finish(case: Case, exit_code: int) -> dict[str, Any]:
    """Rerun after the kill (a retry, or new triggers until the stream is learned); returns the case's row."""
    from include.ops.training import plan_tasks, register_and_gate

    settings, run = case_settings(case.var_dir), _run_settings(case.train_cfg)
    killed = case.task_ids[case.kill_index]
    if case.mode == "retry":
        _learn(settings, killed, case.train_cfg, f"chaos__{case.kill_index}", run)
    rerun = 0
    # what new triggers of the DAG learn next, up to the case's last task
    while (planned := plan_tasks(settings, None, [])) and planned[0] in case.task_ids:
        rerun += 1
        _learn(settings, planned[0], case.train_cfg, f"chaos__rerun{rerun}", run)
        if rerun > case.tasks:
            raise RuntimeError(f"the stream does not complete: still planning {planned}")
    if rerun == 0 and case.mode == "new_run":
        register_and_gate(
            settings, [], run
        )  # a new trigger with nothing to learn still gates what is pending
    row = {"step": case.step, "mode": case.mode, "killed_task": killed, "exit_code": exit_code}
    row.update(audit(settings, case.task_ids))
    row["ok"] = bool(
        row["completed"]
        and exit_code == -signal.SIGKILL
        and not row["learned_twice"]
        and not row["registered_twice"]
        and row["ungated"] == 0
        and row["running"] == 0
    )
    return row


def run_matrix(cases: list[Case]) -> list[dict[str, Any]]:
    """Prepare every case, kill them all (one subprocess), rerun each; returns the rows."""
    started = time.monotonic()
    jobs = [prepare(case) for case in cases]
    codes = killed_trainings(jobs)
    rows = [finish(case, code) for case, code in zip(cases, codes, strict=True)]
    for row in rows:
        row["seconds"] = round((time.monotonic() - started) / len(rows), 1)
    return rows


def format_table(rows: list[dict[str, Any]]) -> str:
    """The matrix as a fixed-width table with a totals line."""
    cols = ("step", "mode", "killed_task", "ok", "learned_twice", "registered_twice", "running", "orphans_marked",
            "recovered", "seconds")  # fmt: skip
    lines = ["  ".join(f"{c:>16}" for c in cols)]
    for row in rows:
        lines.append(
            "  ".join(f"{str(len(v) if isinstance(v, list) else v):>16}" for v in (row[c] for c in cols))
        )
    twice = sum(len(r["learned_twice"]) for r in rows)
    versions = sum(len(r["registered_twice"]) for r in rows)
    lines.append(
        f"kinds tried: {len(rows)}; failed: {sum(not r['ok'] for r in rows)}; "
        f"tasks learned twice: {twice}; versions registered twice: {versions}"
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point: run the matrix, print the table; exit 1 when any case failed."""
    from model.faults import TRAINING_STEPS as STEPS

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--tasks", type=int, default=2, help="tasks per case (2..5)")
    parser.add_argument("--max-samples", type=int, default=64, help="training samples per task")
    parser.add_argument("--steps", nargs="*", default=list(STEPS), choices=STEPS)
    parser.add_argument("--modes", nargs="*", default=list(MODES), choices=MODES)
    parser.add_argument("--kill-last", action="store_true", help="also kill the last task of each case")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows to this file")
    parser.add_argument("--kill-jobs", type=Path, default=None, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args(argv)
    if args.kill_jobs:
        print(json.dumps(_run_jobs_forked(json.loads(args.kill_jobs.read_text()))))
        return 0
    kill_indexes = [0, args.tasks - 1] if args.kill_last and args.tasks > 1 else [0]
    with tempfile.TemporaryDirectory(prefix="ct-chaos-") as tmp:
        cases = [
            Case(step, mode, Path(tmp) / f"{step}-{mode}-{k}", args.tasks, k, args.epochs, args.max_samples)
            for step in args.steps
            for mode in args.modes
            for k in kill_indexes
        ]
        rows = run_matrix(cases)
    print(format_table(rows))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
