"""The continual-learning plugin: Airflow loads it, API/HTML render a real MLflow store, auth enforced."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from include.ops import cl_state
from include.ops.settings import RETENTION_THRESHOLD
from tests.plugins.mlflow_seed import EXPERIMENT, MODEL

UI = "http://mlflow.example:5000"


@pytest.fixture(scope="module")
def plugin_module() -> Any:
    """The plugin module exactly as Airflow's plugin manager imported it from plugins/."""
    from airflow import plugins_manager

    plugins, errors = plugins_manager._get_plugins()
    mine = [e for path, e in errors.items() if path.endswith("ct_continual_view.py")]
    assert not mine, mine
    (plugin,) = [p for p in plugins if p.name == "continual_learning"]
    import sys

    return sys.modules[type(plugin).__module__]


def _client_for(seeded: dict[str, Any], plugin_module: Any) -> TestClient:
    def load() -> dict[str, Any]:
        return cl_state.continual_state(seeded["tracking_uri"], EXPERIMENT, MODEL, ui_url=UI)

    def history() -> list[dict[str, Any]]:
        return cl_state.learning_history(seeded["tracking_uri"], EXPERIMENT, MODEL, ui_url=UI)

    app = FastAPI()
    app.mount("/ct", plugin_module.create_app(load, history, require_auth=False))
    return TestClient(app)


def test_airflow_registers_app_and_nav_view(plugin_module: Any) -> None:
    from airflow import plugins_manager

    apps, _ = plugins_manager.get_fastapi_plugins()
    assert any(a["url_prefix"] == "/ct" and a["name"] == "Continual learning" for a in apps)
    views, _ = plugins_manager._get_ui_plugins()
    (view,) = [v for v in views if v.get("url_route") == "continual-learning"]
    assert view["href"] == "/ct/view"
    assert view["destination"] == "nav"


def test_api_state_is_the_mlflow_state(seeded: dict[str, Any], plugin_module: Any) -> None:
    client = _client_for(seeded, plugin_module)
    resp = client.get("/ct/api/state")
    assert resp.status_code == 200
    body = resp.json()
    assert body == cl_state.continual_state(seeded["tracking_uri"], EXPERIMENT, MODEL, ui_url=UI)
    assert body["tasks_learned"] == 3
    hist = client.get("/ct/api/history").json()
    assert [r["task_id"] for r in hist] == ["task_0", "task_1", "task_2"]


def test_view_answers_at_once_with_a_loading_state_then_fetches_its_content(plugin_module: Any) -> None:
    def never() -> Any:
        raise AssertionError("the shell must not read MLflow")

    resp = TestClient(plugin_module.create_app(never, never, require_auth=False)).get("/view")
    assert resp.status_code == 200
    assert '<div id="ct-content" data-testid="loading" aria-busy="true">' in resp.text
    assert "Loading the continual-learning state from MLflow" in resp.text
    assert 'fetch("view/content"' in resp.text  # relative: /ct/view -> /ct/view/content


def test_view_renders_heatmap_retention_and_aliases(seeded: dict[str, Any], plugin_module: Any) -> None:
    html = _client_for(seeded, plugin_module).get("/ct/view/content").text
    assert 'data-testid="heatmap"' in html
    # lower triangle filled, upper triangle grey "–"
    assert re.search(r'data-testid="cell-2-0" data-value="0.6000" style="background:rgb\(', html)
    assert 'data-testid="cell-0-2" data-value="–" style="background:rgb(230,230,230)' in html
    assert html.count('data-testid="cell-') == 9
    assert re.search(r'data-testid="retention-task_0" data-value="0.6061".*?badge below', html, re.S)
    assert re.search(r'data-testid="retention-task_1" data-value="0.8763".*?badge ok', html, re.S)
    assert "below threshold: task_0" in html
    assert "new-task acc 0.980 · avg acc 0.810" in html
    run1 = seeded["run_ids"][1]
    assert f'href="{UI}/#/experiments/{seeded["experiment_id"]}/runs/{run1}"' in html
    assert f"version {seeded['versions'][1]}" in html
    assert f"version {seeded['versions'][2]}" in html


def test_view_of_an_empty_store(tracking_uri: str, plugin_module: Any) -> None:
    app = plugin_module.create_app(
        lambda: cl_state.continual_state(tracking_uri, EXPERIMENT, MODEL, ui_url=UI),
        lambda: [],
        require_auth=False,
    )
    html = TestClient(app).get("/view/content").text
    assert 'data-testid="heatmap-empty"' in html
    assert 'data-testid="retention-empty"' in html
    assert re.search(r'data-testid="champion"><h3>champion</h3><p class="empty">not set', html)


def test_mlflow_failure_is_a_503_with_the_reason(plugin_module: Any) -> None:
    def broken() -> dict[str, Any]:
        raise ConnectionError("store is down")

    client = TestClient(plugin_module.create_app(broken, broken, require_auth=False))
    resp = client.get("/api/state")
    assert resp.status_code == 503
    assert "store is down" in resp.json()["detail"]
    assert client.get("/view").status_code == 200, "the shell never waits for MLflow"
    page = client.get("/view/content")
    assert page.status_code == 503
    assert 'data-testid="error"' in page.text and "store is down" in page.text
    assert client.get("/api/history").status_code == 503


def test_user_text_is_escaped(plugin_module: Any) -> None:
    state = cl_state.empty_state("<script>x</script>", MODEL, "sqlite://", RETENTION_THRESHOLD)
    state["acc_matrix"] = {"task_ids": ["<b>t</b>"], "matrix": [[0.5]]}
    state["retention"] = [{"task_id": "<i>t</i>", "retention": 0.5, "passed": False}]
    html = plugin_module.render_page(state)
    assert "<script>x" not in html and "&lt;script&gt;" in html
    assert "<b>t</b>" not in html and "<i>t</i>" not in html


def test_colour_scale_ends_and_missing(plugin_module: Any) -> None:
    assert plugin_module.colour(0.0) == "rgb(68,1,84)"
    assert plugin_module.colour(1.0) == "rgb(253,231,37)"
    assert plugin_module.colour(1.7) == plugin_module.colour(1.0)
    assert plugin_module.colour(None) == plugin_module.colour(float("nan")) == "rgb(230,230,230)"


def test_routes_require_an_airflow_token(airflow_db: Any, ct_env: Any, plugin_module: Any) -> None:
    """Mounted the way the API server mounts plugins: no token 401, forged 403, a real JWT passes."""
    from airflow.api_fastapi.app import init_auth_manager, init_plugins
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    app = FastAPI()
    auth_manager = init_auth_manager(app)
    init_plugins(app)
    client = TestClient(app)
    assert client.get("/ct/api/state").status_code == 401
    assert client.get("/ct/view").status_code == 401
    assert client.get("/ct/view/content").status_code == 401
    token = auth_manager.generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
    forged = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")
    assert client.get("/ct/api/state", headers={"Authorization": f"Bearer {forged}"}).status_code == 403
    client.cookies.set("_token", token)
    ok = client.get("/ct/api/state")
    assert ok.status_code == 200, ok.text
    assert ok.json()["tasks_learned"] == 0  # ct_env: an empty store in a tmp folder
