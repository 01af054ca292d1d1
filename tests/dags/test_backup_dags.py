"""checkpoint_backup and disaster_recovery run end to end with dag.test() on a real Airflow DB."""

from __future__ import annotations

import copy
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.dag_helpers import load_dag, state_name
from tests.ops.backup.backup_support import backup_bytes, listing, restart_s3, tree_digest
from tests.paths import ROOT


def _fast_retries(dag, retries: int | None = None) -> None:
    """Same retry behaviour, seconds instead of minutes between tries."""
    for task in dag.tasks:
        task.retry_delay = timedelta(seconds=1)
        task.retry_exponential_backoff = False
        if retries is not None:
            task.retries = retries


def _states(dagrun) -> dict[str, tuple[str, int]]:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.run_id == dagrun.run_id).all()
        return {ti.task_id: (str(getattr(ti.state, "value", ti.state)), ti.try_number) for ti in tis}


@pytest.fixture
def webhook(no_proxy, monkeypatch: pytest.MonkeyPatch):
    """A local HTTP endpoint configured as the notify_webhook connection; yields the received JSON bodies."""
    received: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    host, port = server.server_address
    monkeypatch.setenv(
        "AIRFLOW_CONN_NOTIFY_WEBHOOK", f'{{"conn_type": "http", "host": "http://{host}:{port}/hook"}}'
    )
    yield received
    server.shutdown()
    server.server_close()


def test_dags_declare_the_schedules_and_params():
    from airflow.sdk import AssetOrTimeSchedule

    backup = load_dag("checkpoint_backup")
    assert isinstance(backup.timetable, AssetOrTimeSchedule)
    assert "model_checkpoint" in str(backup.timetable.asset_condition)
    recovery = load_dag("disaster_recovery")
    assert recovery.schedule is None
    assert recovery.params["source"] == "local" and recovery.params["backup_id"] == "latest"
    assert recovery.params.get_param("source").schema["enum"] == ["local", "s3"]
    assert recovery.params.get_param("dry_run").schema["type"] == "boolean"


def test_checkpoint_backup_dag_backs_up_and_verifies(state, airflow_db):
    from include.ops.backup import latest_complete_backup, verify_backup

    dagrun = load_dag("checkpoint_backup").test()
    assert state_name(dagrun.state) == "success", _states(dagrun)
    latest = latest_complete_backup(state)
    assert latest is not None and latest.files > 10
    assert verify_backup(latest.backup_id, settings=state).ok


def test_checkpoint_backup_dag_retries_then_fails_when_s3_goes_away(state, s3, airflow_db):
    from include.airflow_glue.s3 import s3_store_from_connection
    from include.ops.backup import create_backup, latest_complete_backup, list_backups

    good = create_backup(settings=state, store=s3_store_from_connection())
    (state.state_dir / "notes.txt").write_text("changed state\n" * 100)
    s3.stop_after_object_puts = len(s3.object_puts())
    dag = load_dag("checkpoint_backup")
    _fast_retries(dag)
    dagrun = dag.test()
    states = _states(dagrun)
    assert state_name(dagrun.state) == "failed"
    assert states["upload"] == ("failed", 3), states  # tried, retried twice, failed
    assert states["commit"][0] == "upstream_failed" and states["snapshot"][0] == "success"
    failed = [i for i in list_backups(state) if i.backup_id != good.backup_id]
    assert len(failed) == 1 and not failed[0].complete
    assert latest_complete_backup(state).backup_id == good.backup_id
    restart_s3(s3)
    assert not any(k.endswith(f"{failed[0].backup_id}/manifest.json") for k in listing(s3))
    assert latest_complete_backup(state, "s3", s3_store_from_connection()).backup_id == good.backup_id


def test_checkpoint_backup_dag_respects_the_maintenance_lock(state, airflow_db):
    from include.ops.lock import maintenance_lock

    dag = load_dag("checkpoint_backup")
    _fast_retries(dag, retries=0)
    with maintenance_lock("disaster_recovery:elsewhere", state.lock_file):
        dagrun = dag.test()
    states = _states(dagrun)
    assert state_name(dagrun.state) == "failed"
    assert states["check_lock"][0] == "failed" and states["snapshot"][0] == "upstream_failed"
    assert not state.backup_dir.exists() or not any(state.backup_dir.iterdir())


def test_disaster_recovery_restores_validates_and_notifies(state, airflow_db, webhook):
    from include.ops.backup import create_backup
    from include.ops.lock import is_maintenance_locked

    result = create_backup(settings=state)
    backed_up = tree_digest(state.state_dir)
    for ckpt in state.checkpoint_dir.glob("*.pt"):
        ckpt.write_bytes(b"lost")  # disaster
    dagrun = load_dag("disaster_recovery").test(run_conf={"backup_id": "latest"})
    assert state_name(dagrun.state) == "success", _states(dagrun)
    restored = tree_digest(state.state_dir)
    assert ".restored_from.json" in restored
    assert backup_bytes(restored) == backup_bytes(backed_up)
    assert not is_maintenance_locked(state.lock_file)
    assert len(webhook) == 1 and webhook[0]["summary"]["ok"] is True
    assert webhook[0]["summary"]["backup_id"] == result.backup_id


def test_disaster_recovery_refuses_corrupted_backup_and_bad_params(state, airflow_db, webhook):
    from include.ops.backup import create_backup
    from include.ops.lock import is_maintenance_locked

    dag = load_dag("disaster_recovery")
    with pytest.raises(ValueError, match="Invalid input for param backup_id"):
        dag.test(run_conf={"backup_id": "../../etc"})  # rejected when the run is created: nothing ran
    for key, bad in (("source", "ftp"), ("dry_run", "yes"), ("backup_id", "20261128T214500Z/../x")):
        with pytest.raises(ValueError, match=key):
            copy.deepcopy(dag.params)[key] = bad  # the schema check every trigger (UI, API, CLI) runs

    result = create_backup(settings=state)
    victim = next((Path(result.path) / "state" / "checkpoints").glob("*.pt"))
    data = bytearray(victim.read_bytes())
    data[len(data) // 3] ^= 0x10
    victim.write_bytes(bytes(data))
    before = tree_digest(state.state_dir)
    dagrun = dag.test(run_conf={"backup_id": result.backup_id})
    states = _states(dagrun)
    assert state_name(dagrun.state) == "failed"
    assert states["verify"] == ("failed", 1), "a corrupted backup fails at once, without retries"
    assert states["restore"][0] == "upstream_failed" and states["release"][0] == "success"
    assert tree_digest(state.state_dir) == before
    assert not is_maintenance_locked(state.lock_file)
    assert webhook[-1]["summary"]["ok"] is False
    assert any("verify" in p for p in webhook[-1]["summary"]["problems"])


def test_pause_and_unpause_through_the_real_airflow_api(
    airflow_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    from airflow.api_fastapi.app import create_app
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import DagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session
    from fastapi.testclient import TestClient

    from include.ops.backup.notify import AirflowApiError, set_dags_paused

    passwords = tmp_path / "passwords.json"
    passwords.write_text(json.dumps({"ops": "pw-7d1e"}))
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS", "ops:admin")
    monkeypatch.setenv("AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE", str(passwords))
    monkeypatch.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "test-jwt-secret-for-the-backup-tests")
    DagBundlesManager().sync_bundles_to_db()
    sync_bag_to_db(DagBag(dag_folder=str(ROOT / "dags" / "checkpoint_backup.py")), "dags-folder", None)
    with create_session() as session:
        session.query(DagModel).filter(DagModel.dag_id == "checkpoint_backup").update({"is_paused": False})

    def paused() -> bool:
        with create_session() as session:
            return session.query(DagModel.is_paused).filter(DagModel.dag_id == "checkpoint_backup").scalar()

    with TestClient(create_app()) as client:
        url = "http://testserver"
        previous = set_dags_paused(
            url, "ops", "pw-7d1e", ["checkpoint_backup", "no_such_dag"], True, client=client
        )
        assert previous == {"checkpoint_backup": False} and paused()
        assert set_dags_paused(url, "ops", "pw-7d1e", ["checkpoint_backup"], False, client=client) == {
            "checkpoint_backup": True
        }
        assert not paused()
        with pytest.raises(AirflowApiError, match="login as 'ops' failed"):
            set_dags_paused(url, "ops", "wrong", ["checkpoint_backup"], True, client=client)
    assert not paused()
