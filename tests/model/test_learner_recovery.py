"""What a rerun needs from the learner after a crash: the resumed checkpoint list and a rebuilt LearnResult."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.model.model_support import tiny


def test_resumed_learner_knows_its_latest_checkpoint_and_rebuilds_the_lost_result(
    manifest: Path, tmp_path: Path
):
    from model.learner import STATE_FILENAME, ContinualLearner

    first = ContinualLearner(manifest, tmp_path, train_cfg=tiny())
    original = first.learn_task("task_0").to_dict()
    (tmp_path / STATE_FILENAME).unlink()  # a crash between the checkpoint and the state file

    resumed = ContinualLearner(manifest, tmp_path, train_cfg=tiny())
    assert resumed.latest_checkpoint == Path(original["checkpoint_path"]), (
        "the loaded checkpoint is the last good"
    )
    assert [c["sha256"] for c in resumed.checkpoints] == [original["checkpoint_sha256"]]
    rebuilt = resumed.result_from_checkpoint("task_0").to_dict()
    assert rebuilt == original, "everything a run records comes back from the checkpoint alone"
    assert (tmp_path / STATE_FILENAME).is_file(), "the newest task's rebuild rewrites the state file"
    with pytest.raises(ValueError, match="no checkpoint"):
        resumed.result_from_checkpoint("task_1")
