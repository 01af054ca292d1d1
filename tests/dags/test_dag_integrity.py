"""DAG integrity in three tiers: every file imports, every DAG follows policy, parsing stays cheap."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DAG_FILES = sorted(p for p in (ROOT / "dags").glob("*.py") if not p.name.startswith("_"))
HEAVY = ("torch", "pandas", "mlflow", "great_expectations", "sklearn", "matplotlib")


@pytest.fixture(scope="module")
def dagbag():
    """All project DAGs parsed once."""
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(ROOT / "dags"))


def test_dag_files_exist():
    assert any(p.name == "continual_training.py" for p in DAG_FILES)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_errors(path: Path):
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(path))
    assert not bag.import_errors, bag.import_errors
    assert bag.dags, f"{path.name} defines no DAG"


def test_every_dag_follows_policy(dagbag):
    assert not dagbag.import_errors
    for dag_id, dag in dagbag.dags.items():
        assert dag.tags, f"{dag_id}: no tags"
        assert dag.doc_md and len(dag.doc_md) > 200, f"{dag_id}: doc_md missing or too short for an operator"
        assert dag.catchup is False, f"{dag_id}: catchup must be off"
        assert dag.start_date is not None and dag.start_date.tzinfo is not None, (
            f"{dag_id}: tz-aware start_date"
        )
        for task in dag.tasks:
            assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id}: owner not set"
            assert task.retries >= 1, f"{dag_id}.{task.task_id}: retries must be >= 1"


PROBE = """
import json, sys, time
sys.path.insert(0, {root!r})
started = time.perf_counter()
from airflow.dag_processing.dagbag import DagBag
before = set(sys.modules)
t0 = time.perf_counter()
bag = DagBag(dag_folder={path!r})
elapsed = time.perf_counter() - t0
heavy = sorted(m for m in {heavy!r} if m in sys.modules)
print(json.dumps({{"errors": {{k: str(v) for k, v in bag.import_errors.items()}}, "heavy": heavy,
                  "seconds": elapsed}}))
"""


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parsing_leaves_heavy_modules_unimported(path: Path):
    code = PROBE.format(root=str(ROOT), path=str(path), heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=180,
        check=True,
    )
    report = json.loads(out.stdout.strip().splitlines()[-1])
    assert not report["errors"], report["errors"]
    assert report["heavy"] == [], f"{path.name} imports {report['heavy']} at parse time"
