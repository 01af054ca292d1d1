"""The one fault-injection hook: ``CT_FAULT_AT=<step>`` makes the process SIGKILL itself at that step.

Crash-consistency tests (``include/ops/chaos_training.py``, ``tests/ops/test_training_faults.py``) run the
training in a subprocess with ``CT_FAULT_AT`` set and rerun it without. This is the one setting read from
``os.environ`` outside ``include.ops.settings.Settings`` (``Settings.fault_at`` documents it): model/ may not
import the settings, and the hook must be callable from the training loop and the checkpoint writer too.
Unset (the default) every call is a no-op costing one attribute read.
"""

from __future__ import annotations

import functools
import os
import signal

ENV_VAR = "CT_FAULT_AT"
# where training can die, in the order one task passes them (include/ops/chaos_training.py tries each)
TRAINING_STEPS = (  # a training's steps: the crash matrix of `make chaos` kills at each
    "mid_epoch",  # model.training: after the first optimizer step of an epoch
    "after_checkpoint",  # model.checkpoint: the checkpoint file is in place, its sha256 sidecar is not
    "after_sidecar",  # model.checkpoint: checkpoint and sidecar written, MLflow knows nothing yet
    "after_run_end",  # include.ops.training: the MLflow run is marked learned and ended, no version yet
    "after_registration",  # include.ops.training: the model version exists, the gate has not moved an alias
)
UNLEARNING_STEPS = (
    "after_unlearned_tag",  # include.ops.unlearning: the learned run is marked unlearned, no version yet
    "after_unlearned_quarantine",  # include.ops.unlearning: the file is quarantined, the run does not say so
)
STEPS = TRAINING_STEPS + UNLEARNING_STEPS


@functools.cache
def armed_step() -> str | None:
    """The step named by ``CT_FAULT_AT`` (read once per process), or None; ValueError for an unknown step."""
    step = os.environ.get(ENV_VAR, "").strip() or None
    if step is not None and step not in STEPS:
        raise ValueError(f"{ENV_VAR}={step!r} is not a fault step; choose one of {list(STEPS)}")
    return step


def fault_point(step: str) -> None:
    """SIGKILL this process when ``CT_FAULT_AT`` names ``step``: a crash nothing can clean up after."""
    assert step in STEPS, f"unknown fault step {step!r}"
    if armed_step() == step:
        os.kill(os.getpid(), signal.SIGKILL)
