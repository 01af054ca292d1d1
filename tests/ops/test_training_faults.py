"""Training crash consistency: SIGKILL at every fault step, then a rerun repairs everything by itself.

The matrix is the small one of ``include.ops.chaos_training`` (1 epoch, 64 samples, 1-2 tasks per case); the
full one is ``make chaos``. Each kill is a real SIGKILL of a separate process (``CT_FAULT_AT``)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

import pytest

# (step, rerun mode, tasks, killed task index): every step once, both rerun kinds
CASES = [
    ("mid_epoch", "retry", 1, 0),
    ("after_checkpoint", "new_run", 2, 1),
    ("after_sidecar", "new_run", 1, 0),
    ("after_run_end", "new_run", 1, 0),
    ("after_registration", "retry", 1, 0),
]


@pytest.fixture(scope="module")
def matrix(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], dict]:
    """The rows of the small matrix, keyed by (step, mode)."""
    from include.ops.chaos_training import Case, run_matrix

    root = tmp_path_factory.mktemp("chaos")
    cases = [Case(s, m, root / f"{s}-{m}", tasks=t, kill_index=k) for s, m, t, k in CASES]
    return {(row["step"], row["mode"]): row for row in run_matrix(cases)}


@pytest.mark.parametrize(("step", "mode"), [(s, m) for s, m, _, _ in CASES])
def test_kill_then_rerun_completes_the_stream_once(matrix, step, mode):
    row = matrix[(step, mode)]
    assert row["exit_code"] == -signal.SIGKILL, row
    assert row["completed"], row
    assert row["learned_twice"] == [] and row["registered_twice"] == [], row
    assert row["ungated"] == 0 and row["running"] == 0, row
    assert row["ok"], row


def test_killed_runs_are_marked_orphaned_and_checkpoints_recorded_not_retrained(matrix):
    assert matrix[("mid_epoch", "retry")]["orphans_marked"] == 1, "the killed run was RUNNING: tagged why"
    sidecar = matrix[("after_sidecar", "new_run")]
    assert sidecar["orphans_marked"] == 1 and sidecar["recovered"] == 1, (
        "recorded from its verified checkpoint"
    )
    # the unverified checkpoint (no sidecar) is never trusted: the task is learned again from task_0's
    assert matrix[("after_checkpoint", "new_run")]["recovered"] == 0
    assert matrix[("after_run_end", "new_run")]["orphans_marked"] == 0, "an ended run is not an orphan"


def test_fault_hook_is_off_by_default_and_refuses_unknown_steps(monkeypatch):
    from model import faults

    faults.armed_step.cache_clear()
    monkeypatch.delenv("CT_FAULT_AT", raising=False)
    faults.fault_point("mid_epoch")  # unarmed: returns
    monkeypatch.setenv("CT_FAULT_AT", "after_lunch")
    faults.armed_step.cache_clear()
    with pytest.raises(ValueError, match="after_lunch"):
        faults.armed_step()
    monkeypatch.delenv("CT_FAULT_AT")
    faults.armed_step.cache_clear()


def test_orphan_detection_tells_dead_reused_and_foreign_processes_apart():
    from include.ops import training_recovery as tr

    me = tr.process_identity()
    assert tr.process_gone(me) is None, "this process is alive"
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    os.waitid(os.P_PID, child.pid, os.WEXITED | os.WNOWAIT)  # exited, not reaped yet: a zombie
    dead = {**me, tr.TAG_PID: str(child.pid), tr.TAG_PID_START: "1"}
    assert "no live process" in tr.process_gone(dead), "a zombie is dead"
    child.wait()
    assert "no live process" in tr.process_gone(dead)
    reused = {**me, tr.TAG_PID: str(os.getppid()), tr.TAG_PID_START: "1"}  # a live pid, another start time
    assert "another process" in tr.process_gone(reused)
    foreign = {**dead, tr.TAG_HOST: socket.gethostname() + "-elsewhere"}
    assert tr.process_gone(foreign) is None, "another host's process cannot be judged here"


def test_chaos_table_counts_what_went_wrong(matrix):
    """The `make chaos` table: one line per case and the totals line the issue asks for."""
    from include.ops.chaos_training import format_table

    rows = list(matrix.values())
    table = format_table(rows)
    assert len(table.splitlines()) == len(rows) + 2
    assert table.splitlines()[-1] == (
        f"kinds tried: {len(rows)}; failed: 0; tasks learned twice: 0; versions registered twice: 0"
    )
    bad = {**rows[0], "ok": False, "learned_twice": ["task_0"]}
    assert (
        format_table([bad]).splitlines()[-1].startswith("kinds tried: 1; failed: 1; tasks learned twice: 1")
    )


def test_orphan_sweep_ends_dead_runs_only_and_says_why(ct_env):
    from include.ops import tracking
    from include.ops import training_recovery as tr
    from include.ops.settings import get_settings

    settings = get_settings()
    mlc = tracking.mlflow_client(settings)
    exp = tracking.ensure_experiment(settings)
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    dead = {**tr.process_identity(), tr.TAG_PID: str(child.pid)}
    killed = mlc.create_run(exp, tags={**dead, tracking.TAG_TASK_ID: "task_0"}).info.run_id
    # killed after the learned tag, before the run ended: the task was recorded, only the end was lost
    ended_late = mlc.create_run(exp, tags={**dead, tracking.TAG_STATUS: tracking.STATUS_LEARNED}).info.run_id
    live = mlc.create_run(exp, tags=tr.process_identity()).info.run_id
    unknown = mlc.create_run(exp).info.run_id  # no identity (an older version's run): not judged

    assert sorted(tr.mark_orphaned_runs(settings)) == sorted([killed, ended_late])
    status = {r: mlc.get_run(r).info.status for r in (killed, ended_late, live, unknown)}
    assert status == {killed: "FAILED", ended_late: "FINISHED", live: "RUNNING", unknown: "RUNNING"}
    assert (
        mlc.get_run(killed).data.tags[tr.TAG_ORPHANED]
        == f"killed: no live process {child.pid} on {dead[tr.TAG_HOST]}"
    )
    assert tr.mark_orphaned_runs(settings) == [], "idempotent"
