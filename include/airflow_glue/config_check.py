"""The Airflow half of ``make check-config``: import a DAG folder with ``DagBag`` and report as JSON.

``include.ops.config_check.check_dags`` runs ``python -m include.airflow_glue.config_check <folder>`` in a
subprocess (with a time limit) and reads the last line: ``{"dags": [ids], "errors": {file: error}}``.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path


def dagbag_report(dags_folder: Path) -> dict[str, object]:
    """DAG ids and import errors of every DAG file in ``dags_folder``."""
    os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(dags_folder))
    return {"dags": sorted(bag.dag_ids), "errors": {str(k): str(v) for k, v in bag.import_errors.items()}}


if __name__ == "__main__":
    print(json.dumps(dagbag_report(Path(sys.argv[1]))))
