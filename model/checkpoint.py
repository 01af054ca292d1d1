"""Atomic, checksummed checkpoints: temp file + fsync + ``os.replace`` + fsync(dir), ``<file>.sha256`` beside it."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path
from typing import Any

import torch

from model.faults import fault_point
from model.fsio import atomic_write_bytes, sha256_file


class CheckpointError(Exception):
    """A checkpoint is missing, corrupted, unverifiable or unreadable; the message names the file."""


def sidecar_path(path: Path) -> Path:
    """Path of the ``sha256sum``-format checksum file written beside ``path``."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def save_checkpoint(path: Path, payload: dict[str, Any]) -> str:
    """Write ``payload`` (tensors, primitives, dicts, lists only) atomically; return its sha256, also in ``<path>.sha256``.

    The checkpoint is replaced first and its checksum second, so a crash in between leaves a checkpoint
    whose sidecar does not match: it is refused on load rather than silently trusted.
    """
    path = Path(path)
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    digest = hashlib.sha256(data).hexdigest()
    atomic_write_bytes(path, data)
    fault_point("after_checkpoint")
    atomic_write_bytes(sidecar_path(path), f"{digest}  {path.name}\n".encode())
    fault_point("after_sidecar")
    return digest


def read_sidecar(path: Path) -> str:
    """The sha256 recorded beside ``path``; CheckpointError naming the file if missing or malformed."""
    sidecar = sidecar_path(path)
    try:
        text = sidecar.read_text().split()
    except OSError as exc:
        raise CheckpointError(f"checkpoint {path}: missing checksum file {sidecar.name} ({exc})") from exc
    if not text or len(text[0]) != 64 or any(ch not in "0123456789abcdef" for ch in text[0]):
        raise CheckpointError(f"checkpoint {path}: malformed checksum file {sidecar.name}")
    return text[0]


def verify_checkpoint(path: Path) -> str:
    """Return the sha256 of ``path`` if it matches its sidecar; CheckpointError naming the file otherwise."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    expected = read_sidecar(path)
    actual = sha256_file(path)
    if actual != expected:
        raise CheckpointError(f"checkpoint {path} is corrupted: sha256 {actual} != recorded {expected}")
    return actual


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify ``path`` against its sha256 sidecar, then load it with ``weights_only=True``."""
    path = Path(path)
    verify_checkpoint(path)
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many types for a file that hashes fine but is not a checkpoint
        raise CheckpointError(f"checkpoint {path} could not be loaded: {exc}") from exc
    if not isinstance(payload, dict):
        raise CheckpointError(f"checkpoint {path} does not hold a dict")
    return payload
