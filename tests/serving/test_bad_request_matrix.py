"""The bad-request matrix against a real uvicorn: every case is a 4xx, never a 5xx, and /health keeps answering."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

from tests.serving.bad_requests import CASES, categories, send
from tests.serving.serving_support import TOKEN


def test_the_matrix_covers_at_least_30_kinds_in_8_categories():
    assert len(CASES) >= 30 and len(categories()) >= 8
    assert len({(c.category, c.kind) for c in CASES}) == len(CASES)
    assert all(400 <= status < 500 for c in CASES for status in c.expect)


def test_every_bad_request_is_a_clear_4xx_and_health_keeps_answering(serving_env: Path):
    from include.ops.settings import ServingSettings
    from include.serving.app import create_app
    from include.serving.server import BackgroundServer

    settings = ServingSettings(api_token=TOKEN, degraded_pct=100.0, unhealthy_pct=100.0, champion_poll_s=0)
    outcomes = []
    with BackgroundServer(create_app(settings)) as server:
        for case in CASES:
            status, body = send(server.url, case, TOKEN)
            with urllib.request.urlopen(server.url + "/health", timeout=10) as health:
                assert health.status == 200
            outcomes.append((case.category, case.kind, status, body[:300]))
    wrong = [o for o, case in zip(outcomes, CASES, strict=True) if o[2] not in case.expect]
    assert not wrong, wrong
    for _, kind, status, body in outcomes:
        if status == 422:  # names where: a loc under the body
            detail = json.loads(body)["detail"]
            assert detail and all(e["loc"][0] == "body" and "input" not in e for e in detail), (kind, detail)
    assert not (serving_env / "config" / "model_overrides.json").exists()
    assert not (serving_env / "config" / "train_overrides.json").exists()
