"""Checkpoints: atomic writes with a sha256 sidecar, weights-only loads, corruption refused by name."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from model.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from model.fsio import sha256_file


def test_round_trip_with_sidecar(tmp_path: Path):
    path = tmp_path / "ckpt.pt"
    digest = save_checkpoint(path, {"w": torch.arange(4.0), "task_index": 0, "ids": ["a"]})
    assert digest == sha256_file(path)
    assert (tmp_path / "ckpt.pt.sha256").read_text().split()[0] == digest
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["w"], torch.arange(4.0)) and loaded["ids"] == ["a"]


def test_failed_write_leaves_previous_checkpoint_intact(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"w": torch.zeros(3)})
    before = path.read_bytes()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"w": torch.ones(3)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt.pt", "ckpt.pt.sha256"], "no temp file left"
    assert torch.equal(load_checkpoint(path)["w"], torch.zeros(3))


def test_corrupted_checkpoint_is_refused_by_name(tmp_path: Path):
    path = tmp_path / "task_000_task_0.pt"
    save_checkpoint(path, {"w": torch.zeros(64)})
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="task_000_task_0.pt"):
        load_checkpoint(path)


def test_missing_sidecar_is_refused(tmp_path: Path):
    path = tmp_path / "ckpt.pt"
    save_checkpoint(path, {"w": torch.zeros(2)})
    (tmp_path / "ckpt.pt.sha256").unlink()
    with pytest.raises(CheckpointError, match="ckpt.pt"):
        load_checkpoint(path)


def test_pickled_code_is_never_loaded(tmp_path: Path):
    """weights_only=True: a payload holding an arbitrary object cannot be loaded."""
    import hashlib

    path = tmp_path / "evil.pt"
    torch.save({"obj": Path("/etc/passwd")}, path)
    (tmp_path / "evil.pt.sha256").write_text(hashlib.sha256(path.read_bytes()).hexdigest() + "  evil.pt\n")
    with pytest.raises(CheckpointError):
        load_checkpoint(path)
