"""`make demo`'s job end to end on a tmp project: validate the stream, learn every task through DAG runs."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.dag_helpers import state_name
from tests.paths import ROOT

QUICK = {"epochs": 1, "max_samples_per_task": 64, "accuracy_floor": 0.0, "retention_threshold": 0.0}


def run_demo(*args: str) -> subprocess.CompletedProcess:
    """`make demo`'s command in its own interpreter (its terminal is the pipe), in the test's environment."""
    argv = [sys.executable, "-m", "include.airflow_glue.demo", *args]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.integration
def test_demo_learns_every_task_through_successful_dag_runs(demo_state) -> None:
    """A line per step on the terminal (under 120 for the whole demo), Airflow's task logs in the printed file.

    The demo is the session's (``tests/airflow_glue/demo_support.demo_state``, built once for this test and the
    README's post-demo commands): `make demo`'s command with :data:`QUICK` in its own checkout-shaped folder.
    """
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from mlflow import MlflowClient

    from tests.airflow_glue.demo_support import QUICK_DEMO

    assert QUICK_DEMO == QUICK
    demo, var = demo_state.result, demo_state.var
    with create_session() as session:
        runs = (
            session.query(DagRun)
            .filter(DagRun.dag_id == "continual_training", DagRun.start_date >= demo_state.started)
            .order_by(DagRun.start_date)
            .all()
        )[:5]  # the demo's five (later tests of the session may add runs to this DB)
        states = [state_name(r.state) for r in runs]
        confs = [r.conf for r in runs]
    assert states == ["success"] * 5
    assert all(c == QUICK for c in confs), "every training run gets the demo's --conf"
    assert sorted(p.name for p in (var / "validated").glob("task_*.csv")) == [
        f"task_{k}.csv" for k in range(5)
    ], "every task went through data_validation first"
    client = MlflowClient(tracking_uri=f"sqlite:///{var / 'mlflow' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("continual-tiny-transformer")
    learned = {r.data.tags["ct.task_id"] for r in client.search_runs([exp.experiment_id])}
    assert learned == {f"task_{k}" for k in range(5)}

    out = demo.stdout.splitlines()
    assert len(out) + len(demo.stderr.splitlines()) < 120, demo.stdout + demo.stderr
    assert demo.stderr == ""
    logs = sorted((var / "logs").glob("demo-*.log"))
    assert len(logs) >= 1 and out[0].startswith(f"==> Airflow and task logs: {logs[0]}")
    for k in range(5):
        assert f"   task_{k}.csv validated as task_{k} (" in demo.stdout, "a line per validated file"
        assert any(
            line.startswith(f"   learned task_{k}: new-task acc ") and ", gate: champion v" in line
            for line in out
        )
        assert any(line.startswith(f"   task_{k} loss ") and " 1/1 " in line for line in out), (
            "epoch progress"
        )
    assert (
        "Accuracy matrix" in demo.stdout and "after task_4" in demo.stdout and "demo finished" in demo.stdout
    )
    assert "on http://127.0.0.1:5123)" in demo.stdout and "on http://127.0.0.1:18123," in demo.stdout
    assert f"Full log:       {logs[0]}" in demo.stdout
    log = logs[0].read_text()
    for airflow_line in (
        "[DAG TEST] starting task_id=validate",
        "[DAG TEST] starting task_id=train",
        "Pushing xcom",
    ):
        assert airflow_line in log and airflow_line not in demo.stdout, "the task logs are in the file only"
    assert "new batch(es): ['task_0.csv'" in log, "a task's own print reaches the file"

    timings = json.loads((demo_state.checkout / "timings.json").read_text())
    assert [(s["step"], s.get("task_id")) for s in timings["steps"]] == [
        ("prepare", None),
        ("validate", None),
        *[("train", f"task_{k}") for k in range(5)],
        ("status", None),
    ]
    assert (
        timings["exit_code"] == 0 and sum(s["seconds"] for s in timings["steps"]) <= timings["total_seconds"]
    )

    # a second demo on the same state has nothing left to learn and still succeeds; --verbose prints the logs
    argv = [sys.executable, "-m", "include.airflow_glue.demo", "--conf", json.dumps(QUICK), "--verbose"]
    again = subprocess.run(
        argv, cwd=demo_state.checkout, env=demo_state.env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert "[DAG TEST] starting task_id=find_new_batches" in again.stdout + again.stderr
    assert "demo finished" in again.stdout and "Full log" not in again.stdout
    assert sorted((var / "logs").glob("demo-*.log")) == logs, "verbose writes no log file"


@pytest.mark.parametrize(
    ("conf", "message"),
    [('{"epoch": 5}', "['epoch'] are not params of continual_training"), ("[5]", "must be a JSON object")],
)
def test_demo_refuses_a_conf_it_would_silently_ignore(
    ct_env: Path, capsys: pytest.CaptureFixture, conf: str, message: str
) -> None:
    from include.airflow_glue import demo
    from include.ops.settings import get_settings

    with pytest.raises(SystemExit) as exc:
        demo.main(["--conf", conf])
    assert exc.value.code == 2 and message in capsys.readouterr().err
    assert not get_settings().data_dir.exists(), "refused before anything was written"


def test_demo_writes_split_digits_only_into_an_empty_data_dir(ct_env: Path) -> None:
    from include.airflow_glue import demo
    from include.ops.settings import get_settings
    from model.data import load_manifest

    settings = get_settings()
    settings.data_dir.mkdir(parents=True)  # empty: the demo fills it
    assert demo.main(["--prepare-only"]) == 0
    assert load_manifest(settings.source_manifest).name == "split_digits"
    assert sorted(p.name for p in settings.data_dir.iterdir()) == [
        "manifest.json",
        *(f"task_{k}.csv" for k in range(5)),
    ]
    assert not [p for p in settings.data_dir.parent.iterdir() if p.name.startswith(".")], "no staging left"


def test_demo_never_overwrites_a_users_stream(ct_env: Path) -> None:
    from include.airflow_glue import demo
    from include.ops.settings import get_settings
    from model.data import write_digit_stream

    settings = get_settings()
    write_digit_stream(settings.data_dir, ((0, 5), (1, 6)), seed=3, name="mine")
    (settings.data_dir / "notes.txt").write_text("the user's own file\n")
    before = {p.name: p.read_bytes() for p in settings.data_dir.iterdir()}

    assert demo.main(["--prepare-only"]) == 0

    assert {p.name: p.read_bytes() for p in settings.data_dir.iterdir()} == before
    assert demo.prepare_data(settings) == settings.source_manifest


def test_demo_refuses_a_non_empty_data_dir_without_manifest(ct_env: Path) -> None:
    from include.airflow_glue import demo
    from include.ops.settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True)
    (settings.data_dir / "task_0.csv").write_text("f0,label,split\n")
    with pytest.raises(SystemExit, match="not empty and has no manifest.json"):
        demo.main(["--prepare-only"])
    assert [p.name for p in settings.data_dir.iterdir()] == ["task_0.csv"]
    assert (settings.data_dir / "task_0.csv").read_text() == "f0,label,split\n"
