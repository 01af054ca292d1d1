"""Typed refusals: a request that can never succeed as asked, so retrying it only burns a retry.

The ops library raises a :class:`Refusal` (e.g. a task already learned, model capacity reached, the
maintenance lock held by disaster recovery); the Airflow glue (``include.airflow_glue.refusals``) turns it
into ``AirflowFailException``, which fails the task without its retries and with the reason as the last
line of the task log. Transient failures (a network error, a diverged loss) stay ordinary exceptions.
"""

from __future__ import annotations


class Refusal(Exception):
    """A permanent refusal: the message says what was refused and why, and what the operator can do."""


# the exit code of ``python -m include.ops.train_cli`` for a Refusal: the container task fails without retry
REFUSED_EXIT = 3
