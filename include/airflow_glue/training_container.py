"""The training container's operator: a DockerOperator whose container refusal fails the task without retry.

``python -m include.ops.train_cli`` exits :data:`include.ops.errors.REFUSED_EXIT` when learning is refused (a
task already learned or unlearned, capacity, the maintenance lock); any other non-zero exit stays an ordinary
failure that Airflow retries. Imported only when the docker backend builds its task (the docker provider is
not loaded by a DAG parse on the embedded defaults).
"""

from __future__ import annotations

from typing import Any

from airflow.providers.docker.exceptions import DockerContainerFailedException
from airflow.providers.docker.operators.docker import DockerOperator
from airflow.sdk.exceptions import AirflowFailException

from include.ops.errors import REFUSED_EXIT


def refusal_reason(exc: DockerContainerFailedException) -> str | None:
    """The container's ``refused: ...`` line when it exited with REFUSED_EXIT; None for any other failure."""
    if f"'StatusCode': {REFUSED_EXIT}" not in str(exc):
        return None
    lines = [x.decode(errors="replace") if isinstance(x, bytes) else str(x) for x in exc.logs or []]
    refused = [line.strip() for line in lines if line.strip().startswith("refused:")]
    return refused[-1] if refused else f"refused: the training container exited {REFUSED_EXIT}"


class TrainingContainerOperator(DockerOperator):
    """DockerOperator for ``include.ops.train_cli``: a refusal inside the container is AirflowFailException."""

    def execute(self, context: Any) -> Any:
        """Run the container; its refusal fails the task at once, with the reason as the last log line."""
        try:
            return super().execute(context)
        except DockerContainerFailedException as exc:
            reason = refusal_reason(exc)
            if reason is None:
                raise
            raise AirflowFailException(reason) from exc
