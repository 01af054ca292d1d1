"""``make backup`` & co.: the backup command line with S3 through the Airflow ``s3_backup`` connection.

``python -m include.airflow_glue.backup_cli <command>`` = ``include.ops.backup.cli`` plus the S3 store.
"""

from __future__ import annotations

import contextlib
import sys

from include.airflow_glue.s3 import s3_store_from_connection
from include.ops.backup.cli import main as backup_main
from include.ops.backup.s3 import S3Store


def _store_quietly(*args: object, **kwargs: object) -> S3Store | None:
    """The connection's store; Airflow's log lines (it logs to stdout) go to stderr, keeping ``--json`` clean."""
    with contextlib.redirect_stdout(sys.stderr):
        return s3_store_from_connection(*args, **kwargs)  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    """Run one backup command with the ``s3_backup`` connection's store; return the exit status."""
    return backup_main(argv, store_factory=_store_quietly)


if __name__ == "__main__":
    sys.exit(main())
