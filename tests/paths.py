"""Where the project is, for tests: the one definition of the checkout root."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
