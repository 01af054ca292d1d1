"""`make demo`'s job end to end on a tmp project: validate the stream, learn every task through DAG runs."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.dag_helpers import state_name

QUICK = {"epochs": 1, "max_samples_per_task": 64, "accuracy_floor": 0.0, "retention_threshold": 0.0}


@pytest.mark.integration
def test_demo_learns_every_task_through_successful_dag_runs(
    ct_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session
    from mlflow import MlflowClient

    from include.airflow_glue import demo
    from include.ops.settings import get_settings

    monkeypatch.setenv("CT_GX_DATA_DOCS", "0")
    monkeypatch.delenv("CT_TRAIN_OVERRIDES", raising=False)
    started = datetime.now(UTC)

    assert demo.main(["--conf", json.dumps(QUICK)]) == 0

    with create_session() as session:
        runs = (
            session.query(DagRun)
            .filter(DagRun.dag_id == "continual_training", DagRun.start_date >= started)
            .all()
        )
        states = [state_name(r.state) for r in runs]
        confs = [r.conf for r in runs]
    assert states == ["success"] * 5
    assert all(c == QUICK for c in confs), "every training run gets the demo's --conf"
    settings = get_settings()
    assert sorted(p.name for p in settings.validated_dir.glob("task_*.csv")) == [
        f"task_{k}.csv" for k in range(5)
    ], "every task went through data_validation first"
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    exp = client.get_experiment_by_name(settings.mlflow_experiment)
    learned = {r.data.tags["ct.task_id"] for r in client.search_runs([exp.experiment_id])}
    assert learned == {f"task_{k}" for k in range(5)}
    out = capsys.readouterr().out
    assert "Accuracy matrix" in out and "after task_4" in out and "demo finished" in out
    # a second demo on the same state has nothing left to learn and still succeeds
    assert demo.main(["--conf", json.dumps(QUICK)]) == 0


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
