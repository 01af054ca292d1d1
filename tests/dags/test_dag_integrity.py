"""DAG integrity in three tiers: every file imports, every DAG follows policy, parsing stays cheap.

"Cheap" is asserted by what a parse does, not by racing a clock: no heavy module imported, no SQL
statement, no Connection or Variable lookup. Parse times are measured by ``bench/bench_dag_parse.py``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.dag_helpers import DAG_FILES

HEAVY = ("torch", "pandas", "mlflow", "great_expectations", "sklearn", "matplotlib")


def test_dag_files_exist():
    assert any(p.name == "continual_training.py" for p in DAG_FILES)


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_imports_without_errors(path: Path, dag_bag: Callable[[Path], Any]):
    bag = dag_bag(path)
    assert not bag.import_errors, bag.import_errors
    assert bag.dags, f"{path.name} defines no DAG"


def test_dag_ids_are_unique_across_files(dag_bag: Callable[[Path], Any]):
    counts = Counter(dag_id for path in DAG_FILES for dag_id in dag_bag(path).dags)
    assert counts and all(n == 1 for n in counts.values()), counts


def test_every_dag_follows_policy(dag_bag: Callable[[Path], Any]):
    for path in DAG_FILES:
        bag = dag_bag(path)
        assert not bag.import_errors, bag.import_errors
        for dag_id, dag in bag.dags.items():
            assert dag.tags, f"{dag_id}: no tags"
            assert dag.doc_md and len(dag.doc_md) > 200, (
                f"{dag_id}: doc_md missing or too short for an operator"
            )
            assert dag.catchup is False, f"{dag_id}: catchup must be off"
            assert dag.start_date is not None and dag.start_date.tzinfo is not None, (
                f"{dag_id}: tz-aware start_date"
            )
            for task in dag.tasks:
                assert task.owner and task.owner != "airflow", f"{dag_id}.{task.task_id}: owner not set"
                assert task.retries >= 1, f"{dag_id}.{task.task_id}: retries must be >= 1"


# Parses one DAG file in a fresh interpreter and reports what the parse did: import errors, DAG ids,
# heavy modules now imported, SQL statements executed, Connection/Variable lookups (each one refused).
PROBE = """
import json, sys
from airflow.dag_processing.dagbag import DagBag
from airflow.models.connection import Connection
from airflow.models.variable import Variable as ModelVariable
from airflow.sdk import BaseHook, Variable
from sqlalchemy import event
from sqlalchemy.engine import Engine

queries, lookups = [], []
event.listen(Engine, "before_cursor_execute", lambda conn, cur, stmt, *rest: queries.append(stmt[:200]))


def refuse(kind):
    def lookup(*args, **kwargs):
        lookups.append(f"{{kind}} {{args[-1:]}}")
        raise LookupError(f"{{kind}} lookup at parse time")
    return staticmethod(lookup)


BaseHook.get_connection = Connection.get_connection_from_secrets = refuse("connection")
Variable.get = ModelVariable.get = refuse("variable")
bag = DagBag(dag_folder={path!r})
print(json.dumps({{"errors": {{k: str(v) for k, v in bag.import_errors.items()}}, "dags": sorted(bag.dags),
                  "heavy": sorted(m for m in {heavy!r} if m in sys.modules),
                  "queries": queries, "lookups": lookups}}))
"""


def parse_report(path: Path) -> dict[str, Any]:
    """What parsing ``path`` in a fresh interpreter did (see PROBE)."""
    code = PROBE.format(path=str(path), heavy=HEAVY)
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=dict(os.environ),
        timeout=180,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_parsing_is_cheap(path: Path, dag_bag: Callable[[Path], Any]):
    report = parse_report(path)
    assert not report["errors"], report["errors"]
    assert report["dags"] == sorted(dag_bag(path).dags), "a fresh parse finds the same DAGs"
    assert report["heavy"] == [], f"{path.name} imports {report['heavy']} at parse time"
    assert report["queries"] == [], f"{path.name} queries the database at parse time"
    assert report["lookups"] == [], f"{path.name} looks up Connections/Variables at parse time"


def test_parse_probe_catches_each_violation(tmp_path: Path):
    bad = tmp_path / "bad_dag.py"
    bad.write_text(
        "import pandas\n"
        "from sqlalchemy import text\n"
        "from airflow.sdk import BaseHook, Variable, dag\n"
        "from airflow.utils.session import create_session\n"
        "with create_session() as session:\n"
        "    session.execute(text('SELECT 1'))\n"
        "for get, name in ((Variable.get, 'v'), (BaseHook.get_connection, 'c')):\n"
        "    try:\n"
        "        get(name)\n"
        "    except LookupError:\n"
        "        pass\n"
        "@dag(schedule=None)\n"
        "def bad():\n"
        "    pass\n"
        "bad()\n"
    )
    report = parse_report(bad)
    assert report["errors"] == {} and report["dags"] == ["bad"]
    assert report["heavy"] == ["pandas"]
    assert report["queries"] == ["SELECT 1"]
    assert report["lookups"] == ["variable ('v',)", "connection ('c',)"]
