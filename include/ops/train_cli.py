"""Learn one task and print its LearnResult as one JSON line: the command of the GPU training container.

    python -m include.ops.train_cli --task-id task_0 --train-config '{"epochs": 1}'

Runs ``include.ops.training.learn_one`` (untracked; refused while the maintenance lock is held) on the task
manifest training reads (``resolve_task_manifest``) and the learner state under ``CT_STATE_DIR``. The
``--train-config`` the DAG passes is the run's resolved TrainConfig; it is resolved again here (env and
operator overrides under it), which changes nothing for a complete config. Progress goes to stderr, the
result is the last stdout line (the DockerOperator's XCom). Exit 0 on success, 2 on a bad argument, 1 when
training fails or is refused.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import traceback
from typing import Any

from include.ops.errors import REFUSED_EXIT, Refusal
from include.ops.run_settings import resolve_train_config
from include.ops.settings import get_settings
from include.ops.training import learn_one


def parse_train_config(raw: str) -> tuple[dict[str, Any], list[str]]:
    """Split a JSON object into TrainConfig overrides and ignored keys; ValueError if not a JSON object."""
    from model.config import TrainConfig

    try:
        values = json.loads(raw or "{}")
    except json.JSONDecodeError as exc:
        raise ValueError(f"--train-config is not valid JSON: {exc}") from exc
    if not isinstance(values, dict):
        raise ValueError(f"--train-config must be a JSON object, got {type(values).__name__}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    overrides = {k: v for k, v in values.items() if k in known and v is not None}
    ignored = sorted(k for k in values if k not in known)
    return overrides, ignored


def _refused(exc: Refusal) -> int:
    """Say why on one line; the distinct exit code means it can never succeed as asked: not retried."""
    print(f"refused: {' '.join(str(exc).split())}", file=sys.stderr, flush=True)
    return REFUSED_EXIT


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task-id", required=True, help="task of the manifest to learn, e.g. task_0")
    parser.add_argument("--train-config", default="{}", help="JSON object of TrainConfig overrides")
    args = parser.parse_args(argv)
    try:
        overrides, ignored = parse_train_config(args.train_config)
        train_cfg = resolve_train_config(overrides, get_settings().state_dir)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Refusal as exc:  # another strategy than the stream's: never retried
        return _refused(exc)
    if ignored:
        print(f"ignoring keys that are not TrainConfig fields: {ignored}", file=sys.stderr)

    def on_epoch_end(epoch: int, loss: float) -> None:
        print(f"task {args.task_id} epoch {epoch} loss {loss:.4f}", file=sys.stderr, flush=True)

    try:
        result = learn_one(get_settings(), args.task_id, train_cfg, on_epoch_end=on_epoch_end)
    except Refusal as exc:
        return _refused(exc)
    except Exception as exc:  # the container's exit code is the operator's verdict; say why on stderr
        traceback.print_exc()
        print(f"error: learning {args.task_id} failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result, default=str, separators=(",", ":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
