"""`make learn-stream`: any stream in the format is validated and learned through the DAGs in its own state."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

QUICK = {"epochs": 1, "max_samples_per_task": 32, "accuracy_floor": 0.0, "retention_threshold": 0.0}


@pytest.mark.integration
def test_a_one_class_per_task_stream_is_learned_in_its_own_state(
    ct_env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    from mlflow import MlflowClient

    from include.airflow_glue import learn_stream
    from include.ops.settings import get_settings
    from model.data import write_digit_stream

    stream = tmp_path / "my stream!"
    manifest = write_digit_stream(stream, ((3,), (7,)), seed=0, name="threes_and_sevens")
    before = {p.name: p.read_bytes() for p in stream.iterdir()}
    demo_settings = get_settings()
    state = demo_settings.var_dir / "streams" / "my_stream"
    assert learn_stream.default_state(stream) == state
    monkeypatch.setenv("CT_GX_DATA_DOCS", "0")
    monkeypatch.setenv("CT_VALIDATION_MIN_CLASSES_PER_TASK", "1")  # one class per task: by configuration
    monkeypatch.delenv("CT_TRAIN_OVERRIDES", raising=False)
    saved = {key: os.environ.get(key) for key in learn_stream.stream_env(stream, state)}
    try:  # main points the environment at the stream's state; put it back afterwards
        assert learn_stream.main([str(stream), "--conf", json.dumps(QUICK)]) == 0
        settings = get_settings()
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    assert settings.var_dir == state and settings.source_manifest == manifest
    assert sorted(p.name for p in settings.validated_dir.glob("task_*.csv")) == ["task_0.csv", "task_1.csv"]
    client = MlflowClient(tracking_uri=settings.mlflow_tracking_uri)
    exp = client.get_experiment_by_name(settings.mlflow_experiment)
    assert {r.data.tags["ct.task_id"] for r in client.search_runs([exp.experiment_id])} == {
        "task_0",
        "task_1",
    }
    out = capfd.readouterr().out  # the demo's lines go to fd 1 itself (include/airflow_glue/demo_console.py)
    assert "Accuracy matrix" in out and "after task_1" in out and str(state) in out
    logs = list((state / "logs").glob("demo-*.log"))
    assert len(logs) == 1 and f"==> Airflow and task logs: {logs[0]}" in out, (
        "the log is in the stream's state"
    )
    assert {p.name for p in stream.iterdir()} == set(before), "the stream folder is only read"
    assert all(p.read_bytes() == before[p.name] for p in stream.iterdir())
    assert not demo_settings.validated_dir.exists(), "the demo's state is untouched"
    assert not (demo_settings.var_dir / "mlflow" / "mlflow.db").exists()


def test_learn_stream_refuses_a_folder_without_manifest_and_the_demo_state(
    ct_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from include.airflow_glue import learn_stream
    from include.ops.settings import get_settings

    with pytest.raises(SystemExit) as exc:
        learn_stream.main([""])  # `make learn-stream` without STREAM=
    assert exc.value.code == 2 and "STREAM=<dir>" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        learn_stream.main([str(tmp_path)])
    assert exc.value.code == 2 and "has no manifest.json" in capsys.readouterr().err
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "manifest.json").write_text("{}")
    with pytest.raises(SystemExit) as exc:
        learn_stream.main([str(tmp_path / "s"), "--state", str(get_settings().var_dir)])
    assert exc.value.code == 2 and "the demo's var dir" in capsys.readouterr().err


def test_readme_learn_stream_example_runs_as_printed(tmp_path: Path) -> None:
    """The README's two lines: the generator one-liner writes a stream, the make line calls learn_stream."""
    import os
    import re
    import shlex
    import subprocess
    import sys

    from tests.paths import ROOT

    readme = (ROOT / "README.md").read_text()
    block = next(b for b in re.findall(r"```bash\n(.*?)```", readme, re.S) if "make learn-stream" in b)
    generate, learn = [line.split("   #")[0].strip() for line in block.strip().splitlines()]
    argv = shlex.split(generate)
    assert argv[0] == ".venv/bin/python"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, *argv[1:]], cwd=tmp_path, env=env, check=True, timeout=120)
    stream = tmp_path / "var" / "data" / "pairs"
    assert json.loads((stream / "manifest.json").read_text())["tasks"][4]["classes"] == [4, 9]
    assert learn.startswith("make learn-stream STREAM=var/data/pairs")
    dry = subprocess.run(
        ["make", "-n", *shlex.split(learn)[1:]], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout
    assert (
        '-m include.airflow_glue.learn_stream "var/data/pairs"' in dry and "--conf '{\"epochs\": 5}'" in dry
    )
