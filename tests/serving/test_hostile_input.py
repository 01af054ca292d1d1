"""Hostile bodies: a byte limit counted on what arrives (413), a row cap (422), no input echoed, non-finite
numbers and non-UTF-8 refused naming the field, parsing off the event loop, no absolute paths to anonymous GETs."""

from __future__ import annotations

import json
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from include.serving.bad_requests import read_response
from tests.serving.serving_support import TOKEN, serving_client


@pytest.fixture
def server(serving_env: Path, request: pytest.FixtureRequest) -> Iterator:
    """A real uvicorn serving the app (settings overridable with ``@pytest.mark.parametrize`` of ``overrides``)."""
    from include.ops.settings import ServingSettings
    from include.serving.app import create_app
    from include.serving.server import BackgroundServer

    overrides = getattr(request, "param", {})
    settings = ServingSettings(
        **{
            "api_token": TOKEN,
            "degraded_pct": 100.0,
            "unhealthy_pct": 100.0,
            "champion_poll_s": 0,
            **overrides,
        }
    )
    with BackgroundServer(create_app(settings)) as srv:
        yield srv


def _head(path: str, port: int, extra: str) -> bytes:
    return f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n{extra}\r\n".encode()


def _health(url: str) -> int:
    with urllib.request.urlopen(url + "/health", timeout=10) as resp:
        return resp.status


@pytest.mark.parametrize("server", [{"max_body_bytes": 64 * 1024}], indirect=True)
def test_chunked_body_is_counted_as_it_arrives_and_health_answers_meanwhile(server):
    chunk = b" " * (40 * 1024)
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(_head("/predict", server.port, "Transfer-Encoding: chunked\r\n"))
        sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        assert _health(server.url) == 200  # the big request is still in flight: no terminating chunk yet
        sock.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")  # 80 KiB received > 64 KiB
        status, headers, body = read_response(sock)  # never sent the end of the body
    assert status == 413 and "64" not in headers.get("retry-after", "")
    assert "over the limit of 65536 bytes" in json.loads(body)["detail"]
    assert _health(server.url) == 200


def test_content_length_over_the_limit_is_refused_before_any_body(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
        sock.sendall(_head("/predict", server.port, "Content-Length: 20000000\r\n"))  # and no body at all
        status, _, body = read_response(sock)
    assert status == 413 and "1048576" in body.decode()


@pytest.mark.parametrize(
    ("target", "path", "body"),
    [
        ("include.serving.routers.predict.parse_predict", "/predict", {"instances": [[0] * 64] * 200}),
        ("include.serving.body.parse_model", "/api/config/batch_size", {"value": 8}),
    ],
)
def test_parsing_runs_off_the_event_loop(server, monkeypatch, target, path, body):
    """While a body over ``parse_inline_bytes`` is parsed, /health answers: the parse blocks here until /health
    has answered (the bodies are padded past the 16 KiB under which parsing inline is cheaper than a thread)."""
    module, name = target.rsplit(".", 1)
    real = getattr(__import__(module, fromlist=[name]), name)
    parsing, release = threading.Event(), threading.Event()

    def slow_parse(*args):
        parsing.set()
        release.wait(timeout=60)
        return real(*args)

    monkeypatch.setattr(target, slow_parse)
    result: dict = {}

    def post() -> None:
        req = urllib.request.Request(
            server.url + path, data=json.dumps(body).encode() + b" " * 16384,
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"},
        )  # fmt: skip
        with urllib.request.urlopen(req, timeout=90) as resp:
            result["status"] = resp.status

    thread = threading.Thread(target=post)
    thread.start()
    try:
        assert parsing.wait(timeout=30)
        assert _health(server.url) == 200  # answered while the parse is still blocked
        assert "status" not in result
    finally:
        release.set()
        thread.join(timeout=60)
    assert result["status"] == 200


def test_rows_are_capped_and_the_error_echoes_nothing(serving_env: Path):
    with serving_client(max_body_bytes=4 * 1024 * 1024) as client:
        resp = client.post("/predict", json={"instances": [[0] * 64] * 10_000})
        assert resp.status_code == 422
        assert resp.json()["detail"] == [
            {
                "type": "too_long",
                "loc": ["body", "instances"],
                "msg": "at most 256 images per request, got 10000",
            }
        ]
        bad_rows = [[0] * 63 + ["secret-marker-7"]] * 200
        resp = client.post("/predict", json={"instances": bad_rows})
        assert resp.status_code == 422 and "secret-marker-7" not in resp.text
        assert len(resp.json()["detail"]) == 20 and len(resp.content) < 5000  # the first errors, not all 200
        assert all(set(e) == {"type", "loc", "msg"} for e in resp.json()["detail"])
    with serving_client(max_rows=4) as client:
        resp = client.post("/predict", json={"instances": [[0] * 64] * 5})
        assert resp.status_code == 422 and resp.json()["detail"][0]["loc"] == ["body", "instances"]
        assert client.post("/predict", json={"instances": [[0] * 64] * 4}).status_code == 200


PREDICT_TAIL = b", 0" * 63 + b"]]}"


@pytest.mark.parametrize(
    ("path", "body", "loc", "says"),
    [
        ("/predict", b'{"instances": [[NaN' + PREDICT_TAIL, ["body", "instances", 0, 0], "NaN"),
        (
            "/predict",
            b'{"instances": [[0, Infinity' + PREDICT_TAIL[3:],
            ["body", "instances", 0, 1],
            "Infinity",
        ),
        ("/predict", b'{"instances": [[-Infinity' + PREDICT_TAIL, ["body", "instances", 0, 0], "-Infinity"),
        ("/predict", b'{"instances": [[1e999' + PREDICT_TAIL, ["body", "instances", 0, 0], "infinity"),
        ("/predict", b'{"instances": [[\xff' + PREDICT_TAIL, ["body"], "UTF-8"),
        ("/api/config/learning_rate", b'{"value": NaN}', ["body", "value"], "NaN"),
        ("/api/config/weight_decay", b'{"value": 1e999}', ["body", "value"], "infinity"),
        ("/api/config/batch_size", b'{"value": Infinity}', ["body", "value"], "Infinity"),
        ("/api/config/mixed_precision", b'{"enabled": "\xe9"}', ["body"], "UTF-8"),
        ("/api/config/model", b'{"dropout": NaN}', ["body", "dropout"], "NaN"),
        ("/api/config/model", b'{"d_model": 64, "dropout": -Infinity}', ["body", "dropout"], "-Infinity"),
    ],
)
def test_non_finite_numbers_and_non_utf8_bodies_are_422_naming_the_field(client, auth, path, body, loc, says):
    method = client.put if path == "/api/config/model" else client.post
    resp = method(path, content=body, headers={**auth, "Content-Type": "application/json"})
    assert resp.status_code == 422, resp.text
    (error,) = resp.json()["detail"]
    assert error["loc"] == loc and says in error["msg"], error


@pytest.mark.parametrize(
    ("payload", "field", "says"),
    [
        ({"d_model": 100_000_000}, "d_model", "less than or equal to 4096"),
        ({"d_model": 96}, "d_model", "parameter budget"),
        ({"d_model": 1024, "n_layers": 8}, "d_model", "parameter budget"),
        ({"dropout": 1.0}, "dropout", "less than 1"),
        ({"dropout": -0.5}, "dropout", "greater than or equal to 0"),
        ({"n_layers": 0}, "n_layers", "greater than or equal to 1"),
        ({"param_budget": None}, "param_budget", "Extra inputs"),
        ({"pool": "max"}, "pool", "'cls', 'mean' or 'flatten'"),
    ],
)
def test_model_config_put_validates_bounds_and_the_parameter_budget(
    client, auth, serving_env, payload, field, says
):
    resp = client.put("/api/config/model", json=payload, headers=auth)
    assert resp.status_code == 422, resp.text
    assert any(e["loc"] == ["body", field] and says in e["msg"] for e in resp.json()["detail"]), resp.json()
    assert not (serving_env / "config" / "model_overrides.json").exists()


def test_anonymous_get_routes_disclose_no_absolute_paths(serving_env: Path, tmp_path: Path):
    from include.ops.serving_routes import ROUTES

    reports = serving_env / "reports" / "maintenance"
    reports.mkdir(parents=True)
    (reports / "maintenance_daily_20260101T050000Z.json").write_text(
        json.dumps({"kind": "maintenance_daily", "run_id": "r1", "status": "pass", "started_at": time.time()})
    )
    anonymous = [r.path for r in ROUTES if r.method == "GET" and not r.auth]
    with serving_client() as client:
        texts = {path: client.get(path).text for path in anonymous}
        assert (
            client.get("/api/jobs/recent").json()["jobs"][0]["report"]
            == "maintenance_daily_20260101T050000Z.json"
        )
        assert client.get("/health/model").json()["checkpoint_path"] == "checkpoints/task_001_task_1.pt"
    for path in (serving_env / "state" / "checkpoints").iterdir():
        path.unlink()
    with serving_client() as client:  # no model: the errors name files, not where they are
        texts.update({f"{path} (no model)": client.get(path).text for path in anonymous})
        texts["POST /predict (no model)"] = client.post("/predict", json={"instances": [[0] * 64]}).text
    roots = {str(tmp_path), str(tmp_path.resolve()), "/tmp/"}
    leaks = {path: root for path, text in texts.items() for root in roots if root in text}
    assert not leaks, {path: texts[path][:400] for path in leaks}
    assert "checkpoint checkpoints/task_001_task_1.pt does not exist" in texts["/health/model (no model)"]
