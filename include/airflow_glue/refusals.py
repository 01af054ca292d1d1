"""Refusals fail a task without its retries: the ops library's typed refusals become ``AirflowFailException``.

Every DAG task that can be refused (training, backups, recovery, drills, validation, maintenance) runs its
library call inside :func:`fail_on_refusal`. A refusal can never succeed on a retry (the task is already
learned, the model is at capacity, disaster recovery holds the maintenance lock), so the task fails at once
and the exception's one-line message, ``refused: <reason>``, is the last line of its traceback in the log.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

log = logging.getLogger(__name__)


def refusal_types() -> tuple[type[Exception], ...]:
    """The exception types that mean "refused, do not retry" (imported when a task runs, not at parse)."""
    from include.ops.errors import Refusal
    from include.ops.lock import MaintenanceLocked

    return (Refusal, MaintenanceLocked)


@contextlib.contextmanager
def fail_on_refusal(*extra: type[Exception]) -> Iterator[None]:
    """Run the block; a refusal (or one of ``extra``) fails the task without retries, naming the reason."""
    from airflow.sdk.exceptions import AirflowFailException

    try:
        yield
    except (*refusal_types(), *extra) as exc:
        reason = " ".join(str(exc).split()) or type(exc).__name__
        log.error("refused (%s), not retrying: %s", type(exc).__name__, reason)
        raise AirflowFailException(f"refused: {reason}") from exc
