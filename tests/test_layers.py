"""The layer contracts of pyproject.toml hold, and a forbidden import breaks them (so `make lint` can fail)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _lint_imports() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=ROOT, capture_output=True, text=True, timeout=120
    )


def test_layer_contracts_hold_on_the_tree():
    result = _lint_imports()
    assert result.returncode == 0, result.stdout[-3000:]
    assert "Contracts: 3 kept, 0 broken." in result.stdout


@pytest.mark.parametrize(
    ("probe", "line", "contract"),
    [
        ("model/_layer_probe.py", "import include.ops.settings\n", "model/ knows only torch"),
        ("model/_layer_probe.py", "def f():\n    import mlflow\n", "model/ knows only torch"),
        ("include/ops/_layer_probe.py", "def f():\n    from airflow.sdk import Asset\n", "Airflow-free"),
        ("include/ops/_layer_probe.py", "import include.serving\n", "Layers:"),
        ("include/serving/_layer_probe.py", "import include.airflow_glue\n", "Layers:"),
    ],
)
def test_a_forbidden_import_breaks_a_contract(probe: str, line: str, contract: str):
    path = ROOT / probe
    assert not path.exists()
    path.write_text(f'"""Layer probe written by tests/test_layers.py."""\n\n{line}')
    try:
        result = _lint_imports()
    finally:
        path.unlink()
    assert result.returncode != 0
    broken = result.stdout.split("Broken contracts", 1)[1]
    assert contract in broken
    assert "_layer_probe" in broken
