"""The demo's terminal (include/airflow_glue/demo_console.py): step lines on the terminal, every other write in
the log file, progress read from the JSON logs the tasks write (include.ops.jsonlog.JsonLogTail)."""

from __future__ import annotations

import io
import json
import os
import subprocess
from pathlib import Path

import pytest

from include.airflow_glue.demo_console import DemoConsole, TrainingProgress, ValidationProgress
from include.ops import local_ports
from include.ops.jsonlog import JsonLogTail
from tests.paths import ROOT


def test_captured_writes_go_to_the_log_file_and_the_demos_lines_to_the_terminal(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    with DemoConsole(tmp_path / "logs") as console:
        assert console.log_path is not None and console.log_path.parent == tmp_path / "logs"
        assert console.log_path.name.startswith("demo-") and console.log_path.suffix == ".log"
        console.say("step one")
        with console.captured():
            os.write(1, b"fd 1 from C code\n")
            os.write(2, b"fd 2 traceback\n")
            subprocess.run(["sh", "-c", "echo child stdout; echo child stderr >&2"], check=True)
        console.say("step two")
        os.write(1, b"after the block\n")
        log = console.log_path.read_text()
    out, err = capfd.readouterr()
    assert out.splitlines() == ["step one", "step two", "after the block"], "fds 1/2 are put back"
    assert err == ""
    assert log.splitlines() == ["fd 1 from C code", "fd 2 traceback", "child stdout", "child stderr"]


def test_a_failure_shows_the_end_of_the_log_and_its_path(
    tmp_path: Path, capfd: pytest.CaptureFixture
) -> None:
    with DemoConsole(tmp_path) as console:
        with console.captured():
            os.write(1, "".join(f"line {i}\n" for i in range(50)).encode() + b"x" * 1000 + b"\n")
        console.report_failure("continual_training failed")
    out = capfd.readouterr().out.splitlines()
    assert out[0] == f"!! continual_training failed; the last lines of {console.log_path}:"
    assert out[-1] == f"!! full Airflow and task logs: {console.log_path}"
    shown = out[1:-1]
    assert len(shown) == 20 and shown[0] == "   | line 31" and shown[-2] == "   | line 49"
    assert shown[-1].endswith("...") and len(shown[-1]) < 420, "a long log line is cut"


def test_verbose_redirects_nothing_and_writes_no_log(tmp_path: Path, capfd: pytest.CaptureFixture) -> None:
    with DemoConsole(tmp_path / "logs", verbose=True) as console:
        with console.captured():
            os.write(1, b"airflow log line\n")
        console.say("step")
        with console.follow(tmp_path / "x.log", lambda r: None) as followed:
            assert followed is None, "nothing is followed: the task logs are on the terminal already"
    assert capfd.readouterr().out.splitlines() == ["airflow log line", "step"]
    assert console.log_path is None and not (tmp_path / "logs").exists()


def test_json_log_tail_delivers_only_lines_appended_inside_the_block_in_order(tmp_path: Path) -> None:
    path = tmp_path / "training.log"
    path.write_text(json.dumps({"message": "before"}) + "\n")
    seen: list[str] = []
    with JsonLogTail(path, lambda r: seen.append(r["message"]), interval_s=60) as tail:
        with path.open("a") as fh:
            fh.write(json.dumps({"message": "one"}) + "\nnot json\n[1, 2]\n" + '{"message": "tw')
        tail.poll()
        assert seen == ["one"], "a half-written line waits for its end"
        with path.open("a") as fh:
            fh.write('o"}\n')
        tail.poll()
        assert seen == ["one", "two"]
        path.write_text(json.dumps({"message": "after cleanup"}) + "\n")  # log cleanup: a new, shorter file
    assert seen == ["one", "two", "after cleanup"], "the last lines are read when the block ends"
    with JsonLogTail(tmp_path / "missing.log", seen.append) as tail:
        tail.poll()
    assert len(seen) == 3, "a log not written yet is no error"


def test_validation_progress_prints_one_line_per_outcome_with_its_seconds() -> None:
    lines: list[str] = []
    clock = iter([10.0, 13.5, 14.0, 20.5]).__next__
    progress = ValidationProgress(lines.append, clock=clock)
    progress({"file": "task_0.csv", "level": "INFO", "message": "task_0.csv validated as task_0 (360 rows)"})
    progress({"file": "task_1.csv", "level": "WARNING", "message": "task_1.csv: images unlike the stream's"})
    progress(
        {"file": "task_1.csv", "level": "INFO", "validated_as": "task_0.csv", "message": "task_1.csv skipped"}
    )
    progress(
        {
            "file": "task_2.csv",
            "level": "ERROR",
            "alert": "DataValidationFailed",
            "message": "task_2.csv rejected",
        }
    )
    progress({"level": "INFO", "message": "store indexes not updated"})
    assert lines == [
        "   task_0.csv validated as task_0 (360 rows)  (3.5s)",
        "   ! task_1.csv: images unlike the stream's",
        "   task_1.csv skipped  (0.5s)",
        " !!task_2.csv rejected  (6.5s)",
    ]
    assert progress.verdicts == {"validated": 1, "skipped": 1, "rejected": 1}


def _epoch(task: str, epoch: int, ts: float) -> dict:
    return {
        "ts": f"2026-12-04T10:00:{ts:06.3f}+00:00",
        "logger": "include.ops.training",
        "message": f"task {task} epoch {epoch} loss {1 / (epoch + 1):.4f}",
    }


def test_training_progress_draws_a_bar_per_task_on_the_records_clock() -> None:
    out = io.StringIO()
    progress = TrainingProgress(out, epochs=8)
    progress(
        {"ts": "2026-12-04T10:00:00.000+00:00", "logger": "model.training", "message": "learning task t1 (x)"}
    )
    for epoch in range(8):
        progress(_epoch("t1", epoch, ts=2.0 * (epoch + 1)))
    progress({"ts": "2026-12-04T10:00:20.000+00:00", "logger": "other", "message": "task t1 epoch 9 loss 1"})
    progress.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 4, "a line per quarter, then the last state"
    assert lines[0].startswith("   t1 loss 0.5000 [") and " 25.0% 2/8 0:04 " in lines[0]
    assert " 100.0% 8/8 0:16 " in lines[-1] and lines[-1].endswith("0.5/s"), "rate from the records' ts"


def test_training_progress_marks_an_unfinished_bar_failed() -> None:
    out = io.StringIO()
    progress = TrainingProgress(out, epochs=4)
    progress(_epoch("t2", 0, ts=1.0))
    progress.close(failed=True)
    assert out.getvalue().splitlines()[-1].endswith("FAILED")


def test_airflow_ui_url_follows_the_make_target() -> None:
    ui_mk = (ROOT / "mk" / "ui.mk").read_text()
    assert f'"$(or $(AIRFLOW_UI_PORT),~{local_ports.AIRFLOW_UI_PORT})"' in ui_mk, "one default port"
    port = local_ports.free_ports(["0"])[0]
    assert local_ports.airflow_ui_url({"AIRFLOW_UI_PORT": str(port)}) == f"http://127.0.0.1:{port}"
    assert local_ports.airflow_ui_url({"AIRFLOW_UI_HOST": "0.0.0.0", "AIRFLOW_UI_PORT": str(port)}).endswith(
        f"127.0.0.1:{port}"
    )
    assert local_ports.airflow_ui_url({}).startswith("http://127.0.0.1:")
