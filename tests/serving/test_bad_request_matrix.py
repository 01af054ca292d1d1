"""The bad-request matrix against a real uvicorn, through ``make chaos``'s runner: every case the expected 4xx,
never a 5xx, and /health answering throughout."""

from __future__ import annotations

import json
from pathlib import Path

from include.serving.bad_requests import CASES, categories
from include.serving.chaos import format_table, passed, run_bad_requests, totals
from tests.serving.serving_support import TOKEN


def test_the_matrix_covers_at_least_30_kinds_in_8_categories():
    assert len(CASES) >= 30 and len(categories()) >= 8
    assert len({(c.category, c.kind) for c in CASES}) == len(CASES)
    assert all(400 <= status < 500 for c in CASES for status in c.expect)


def test_every_bad_request_is_a_clear_4xx_and_health_keeps_answering(serving_env: Path):
    """The app in its own process, as deployed and as `make chaos` runs it: in the test process a garbage
    collection of the whole suite's heap could stall its event loop, which is not the app's doing."""
    from include.serving.server import ServerProcess

    env = {
        "CT_API_TOKEN": TOKEN,
        "CT_SERVING_DEGRADED_PCT": "100",
        "CT_SERVING_UNHEALTHY_PCT": "100",
        "CT_SERVING_CHAMPION_POLL_S": "0",
    }
    with ServerProcess(env, log_file=serving_env / "serving.log") as server:
        rows = run_bad_requests(server.url, TOKEN)
    wrong = [(r["kind"], r["status"], r["expected"], r["body"]) for r in rows if not r["ok"]]
    assert not wrong, wrong
    summary = totals(rows)
    assert summary["5xx"] == 0 and summary["4xx"] == len(CASES) and summary["health_unresponsive_s"] == 0
    assert passed(rows) and f"kinds tried: {len(CASES)} in {len(categories())} categories" in format_table(
        rows
    )
    for r in rows:
        if r["status"] == 422:  # names where: a loc under the body, never the input
            detail = json.loads(r["body"])["detail"]
            assert detail and all(e["loc"][0] == "body" and "input" not in e for e in detail), r
    assert not (serving_env / "config" / "model_overrides.json").exists()
    assert not (serving_env / "config" / "train_overrides.json").exists()


def test_a_5xx_or_an_unresponsive_health_fails_the_table():
    ok = {"category": "c", "kind": "k", "status": 422, "ok": True, "4xx": 1, "5xx": 0,
          "health_unresponsive_s": 0.0, "health_max_ms": 3.0, "learned_twice": 0}  # fmt: skip
    assert passed([ok])
    assert not passed([ok, {**ok, "status": 500, "ok": False, "4xx": 0, "5xx": 1}])
    assert not passed([ok, {**ok, "health_unresponsive_s": 1.2}])
    assert not passed([ok, {**ok, "learned_twice": 1}])
