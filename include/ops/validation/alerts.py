"""Alerts and metrics of data validation: JSON-lines records in the log dir and a Pushgateway push.

Every outcome is a JSON line in ``<log_dir>/data_validation.log`` (the project's ``<component>.log`` format:
``ts``, ``level``, ``logger``, ``component``, ``message`` + fields). A rejection is an ERROR line with
``alert: "DataValidationFailed"``. When env ``PUSHGATEWAY_URL`` is set, the totals are pushed (job
``data_validation``): ``continual_transformer_data_validation_failures_total{check}`` counted from the
quarantine index, ``continual_transformer_data_validation_batches_validated_total`` from the validated index,
and ``continual_transformer_data_validation_last_failure_timestamp_seconds``. Alerting never raises.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from include.ops.validation.store import read_index

log = logging.getLogger(__name__)

COMPONENT = "data_validation"
ALERT_NAME = "DataValidationFailed"
FAILURES_METRIC = "continual_transformer_data_validation_failures"  # exposed with the _total suffix
VALIDATED_METRIC = "continual_transformer_data_validation_batches_validated"
LAST_FAILURE_METRIC = "continual_transformer_data_validation_last_failure_timestamp_seconds"
PUSH_JOB = "data_validation"
PUSH_TIMEOUT_S = 5.0


def log_path(log_dir: Path) -> Path:
    """The JSON-lines file validation writes to."""
    return Path(log_dir) / f"{COMPONENT}.log"


def record(log_dir: Path, level: str, message: str, **fields: Any) -> None:
    """Append one JSON line (a single write, so concurrent writers never interleave); log it too."""
    entry = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": level,
        "logger": __name__,
        "component": COMPONENT,
        "message": message,
        **fields,
    }
    line = (json.dumps(entry, default=str, ensure_ascii=False) + "\n").encode()
    try:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        fd = os.open(log_path(log_dir), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    except OSError as exc:
        log.error("cannot write validation record to %s: %s", log_path(log_dir), exc)
    log.log(logging.getLevelName(level), message)


def push_metrics(validated_dir: Path, quarantine_dir: Path, failed_now: bool) -> bool:
    """Push validation totals to ``PUSHGATEWAY_URL``; True if pushed, False if unset or unreachable."""
    url = os.environ.get("PUSHGATEWAY_URL", "").strip()
    if not url:
        return False
    from prometheus_client import CollectorRegistry, Gauge, pushadd_to_gateway
    from prometheus_client import Counter as PromCounter

    try:
        failures = Counter(e.get("check") or "unknown" for e in read_index(quarantine_dir).get("entries", []))
        validated = len(read_index(validated_dir).get("files", {}))
    except ValueError as exc:
        log.warning("validation metrics not pushed: %s", exc)
        return False
    registry = CollectorRegistry()
    counter = PromCounter(
        FAILURES_METRIC, "Task batches rejected by data validation", ["check"], registry=registry
    )
    for check, count in failures.items():
        counter.labels(check=check).inc(count)
    PromCounter(VALIDATED_METRIC, "Task batches that passed data validation", registry=registry).inc(
        validated
    )
    if failed_now:
        Gauge(LAST_FAILURE_METRIC, "Unix time of the last rejected batch", registry=registry).set(time.time())
    try:
        pushadd_to_gateway(url, job=PUSH_JOB, registry=registry, timeout=PUSH_TIMEOUT_S)
    except Exception as exc:  # an unreachable Pushgateway must not hide the validation outcome
        log.warning("push of validation metrics to the Pushgateway failed: %s", exc)
        return False
    return True
