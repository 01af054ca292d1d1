"""Every runbook command on ``/api/*`` works as the runbook writes it, plus one Authorization header.

The commands run with the real curl against a real uvicorn. Placeholders are expanded as docs/operations.md
documents: ``localhost:8000`` is the app's address, ``$CT_API_TOKEN`` the bearer token, and
``new_model_config.json`` a file holding a partial ModelConfig.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.paths import ROOT
from tests.serving.serving_support import TOKEN

RUNBOOK = ROOT.parent / "shared" / "runbook.md"  # the spec, beside the checkout (not shipped with it)
# Verbatim from the runbook ("Incident Response", "Model Configuration Updates"), in its order.
RUNBOOK_API_COMMANDS = (
    "curl http://localhost:8000/api/jobs/recent",
    "curl -X POST http://localhost:8000/api/config/batch_size -d '{\"value\": 16}'",
    "curl -X POST http://localhost:8000/api/system/clear_gpu_cache",
    "curl http://localhost:8000/api/training/history",
    "curl http://localhost:8000/api/training/lr_schedule",
    "curl -X POST http://localhost:8000/api/config/learning_rate -d '{\"value\": 1e-5}'",
    "curl -X POST http://localhost:8000/api/config/weight_decay -d '{\"value\": 0.01}'",
    "curl -X POST http://localhost:8000/api/config/mixed_precision -d '{\"enabled\": true}'",
    "curl -X PUT http://localhost:8000/api/config/model -d @new_model_config.json",
    "curl http://localhost:8000/api/config/model",
    "curl -X POST http://localhost:8000/api/model/reload",
)
NEW_MODEL_CONFIG = {"d_model": 48, "n_heads": 4}  # the example docs/operations.md gives for the file


def api_commands(markdown: str) -> list[str]:
    """The ``curl`` lines of a Markdown file that call ``/api/``, as written."""
    return [line.strip() for line in markdown.splitlines() if re.match(r"\s*curl .*/api/", line)]


def test_the_embedded_commands_are_the_runbooks():
    if not RUNBOOK.is_file():
        pytest.skip(f"{RUNBOOK} is not beside this checkout")
    assert tuple(api_commands(RUNBOOK.read_text())) == RUNBOOK_API_COMMANDS


def test_operations_doc_documents_the_placeholders():
    text = (ROOT / "docs" / "operations.md").read_text()
    assert "new_model_config.json" in text and json.dumps(NEW_MODEL_CONFIG) in text


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_each_runbook_api_command_works_verbatim_plus_the_token(serving_env: Path, tmp_path: Path):
    from include.ops.settings import ServingSettings
    from include.serving.app import create_app
    from include.serving.server import BackgroundServer

    docs = api_commands((ROOT / "docs" / "operations.md").read_text())
    assert docs, "docs/operations.md shows no /api command"
    (tmp_path / "new_model_config.json").write_text(json.dumps(NEW_MODEL_CONFIG))
    settings = ServingSettings(api_token=TOKEN, degraded_pct=100.0, unhealthy_pct=100.0, champion_poll_s=0)
    env = {**os.environ, "CT_API_TOKEN": TOKEN}
    with BackgroundServer(create_app(settings)) as server:
        for command in (*RUNBOOK_API_COMMANDS, *docs):
            line = re.sub(r"(http://)?localhost:8000", server.url, command)
            if "Authorization" not in line:
                line += ' -H "Authorization: Bearer $CT_API_TOKEN"'
            line += " -sS -w '\\n%{http_code}'"  # report the status; the request is unchanged
            proc = subprocess.run(["bash", "-c", line], cwd=tmp_path, env=env, capture_output=True, text=True,
                                  timeout=60)  # fmt: skip
            body, _, status = proc.stdout.rpartition("\n")
            assert proc.returncode == 0 and status == "200", (command, proc.stdout[-500:], proc.stderr[-500:])
            json.loads(body)
    stored = json.loads((serving_env / "config" / "train_overrides.json").read_text())
    assert stored == {"batch_size": 16, "lr": 1e-5, "weight_decay": 0.01, "mixed_precision": True}
    assert json.loads((serving_env / "config" / "model_overrides.json").read_text()) == NEW_MODEL_CONFIG
