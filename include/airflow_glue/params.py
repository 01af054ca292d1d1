"""DAG Params shared by several DAGs, defined once (imported at DAG parse: airflow.sdk only, nothing heavy).

Every Param of every DAG states its rule in its ``description``, which the trigger form shows next to the
field (a refused value only gets a "Bad Request" toast): a range as ``1..500`` / ``>= 8`` / ``> 0`` /
``<= 744``, a pattern verbatim, an enum's values; ``tests/dags/test_dag_docs_params.py`` checks it.
"""

from __future__ import annotations

from airflow.sdk import Param


def app_url_param() -> Param:
    """The serving app's base URL; empty means env ``CT_APP_URL``, else http://127.0.0.1:8000."""
    return Param("", type="string", description="Serving app base URL; empty: env CT_APP_URL or :8000.")


def outcome_params() -> dict[str, Param]:
    """``strict`` and ``alert_on_warning``: how a maintenance run turns check results into failure and alerts."""
    return {
        "strict": Param(False, type="boolean", description="Also fail on skipped / not-available checks."),
        "alert_on_warning": Param(
            False, type="boolean", description="Post to alert_webhook on warnings too."
        ),
    }
