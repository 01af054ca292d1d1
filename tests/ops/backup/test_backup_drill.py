"""DR drill: scratch restore + validation, live state untouched, RTO/RPO in a report and on a real Pushgateway."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from tests.ops.backup.backup_support import tree_digest
from tests.paths import ROOT


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def pushgateway(no_proxy, monkeypatch: pytest.MonkeyPatch):
    """A real prometheus-pushgateway on 127.0.0.1, wired in through PUSHGATEWAY_URL; yields its URL."""
    binary = shutil.which("prometheus-pushgateway") or shutil.which("pushgateway")
    assert binary is not None, "prometheus-pushgateway is not installed (make system-deps)"
    port = _free_port()
    proc = subprocess.Popen(
        [binary, f"--web.listen-address=127.0.0.1:{port}"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{url}/-/ready", timeout=1).read()
                break
            except OSError:
                time.sleep(0.1)
        monkeypatch.setenv("PUSHGATEWAY_URL", url)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_drill_dag_restores_into_scratch_and_reports_rto_rpo(state, airflow_db, pushgateway):
    from airflow.dag_processing.dagbag import DagBag

    from include.ops.backup import create_backup

    backup = create_backup(settings=state)
    live_before = tree_digest(state.state_dir)
    mlflow_before = tree_digest(state.var_dir / "mlflow")

    dag = DagBag(dag_folder=str(ROOT / "dags" / "dr_drill.py")).get_dag("dr_drill")
    dagrun = dag.test()
    assert str(getattr(dagrun.state, "value", dagrun.state)) == "success"

    report = json.loads((state.reports_dir / "dr_drill_latest.json").read_text())
    assert report["ok"] is True and report["backup_id"] == backup.backup_id
    assert report["restore_seconds"] > 0 and report["backup_age_seconds"] >= 0
    assert report["validation"]["measured"] == report["validation"]["recorded"]
    assert report["metrics_pushed"] is True
    assert (
        tree_digest(state.state_dir) == live_before and tree_digest(state.var_dir / "mlflow") == mlflow_before
    )
    assert not list(state.var_dir.glob("dr-drill-*")), "the scratch restore must be removed"

    metrics = urllib.request.urlopen(f"{pushgateway}/metrics", timeout=5).read().decode()
    for name in (
        "continual_transformer_dr_restore_seconds",
        "continual_transformer_backup_age_seconds",
        "continual_transformer_backup_last_success_timestamp_seconds",
    ):
        line = next(ln for ln in metrics.splitlines() if ln.startswith(name + "{") and 'job="dr_drill"' in ln)
        assert float(line.rsplit(" ", 1)[1]) > 0


def test_failed_drill_writes_its_report_and_names_the_problem(state):
    from include.ops.backup import DrillFailed, create_backup, dr_drill

    backup = create_backup(settings=state)
    victim = Path(backup.path) / "state" / "learner_state.json"
    victim.write_text(victim.read_text().replace("task", "tusk"))
    with pytest.raises(DrillFailed, match="state/learner_state.json") as excinfo:
        dr_drill(settings=state)
    report = json.loads(Path(excinfo.value.report.report_path).read_text())
    assert report["ok"] is False and report["backup_id"] == backup.backup_id
    assert any("learner_state.json" in p for p in report["problems"])
