"""A rollback moves ``champion`` back and the serving app answers ``/predict`` with the older version."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.serving.serving_support import TOKEN, checkpoints, register_champion, serving_client


def _two_champions(var: Path) -> None:
    """v1 (task_0's checkpoint) then v2 (task_1's) promoted by the gate, as the history records them."""
    from include.ops import alias_history, tracking
    from include.ops.settings import get_settings

    settings = get_settings()
    newest, older = checkpoints(var / "state")
    mlc = tracking.mlflow_client(settings)
    previous = None
    for ckpt in (older, newest):
        version = register_champion(var, ckpt)
        mlc.set_model_version_tag(settings.registered_model, version, "gate", "passed")
        alias_history.append_move(settings, "champion", previous, version, "promotion", "gate passed")
        previous = version


def _predict_version(client) -> str | None:
    resp = client.post("/predict", json={"instances": [[0] * 64]})
    assert resp.status_code == 200, resp.text
    return resp.json()["model_version"]


@pytest.mark.parametrize("how", ["reload", "poll"])
def test_predict_answers_with_the_older_version_after_a_rollback(
    serving_env: Path, monkeypatch: pytest.MonkeyPatch, how: str
):
    from include.ops import alias_history, rollback
    from include.ops.settings import get_settings

    _two_champions(serving_env)
    monkeypatch.setenv("CT_API_TOKEN", TOKEN)
    with serving_client(champion_poll_s=0) as client:
        assert _predict_version(client) == "2"
        settings = get_settings()
        done = rollback.rollback(settings, reason="v2 answers badly", reload=False)
        assert (done.from_version, done.to_version) == ("2", "1")
        if how == "reload":  # the rollback's own call, through the app's POST /api/model/reload
            assert rollback.reload_serving(settings, client=client) == "reloaded v1"
        else:  # what the app's champion poll does after a promotion, too
            assert client.app.state.store.follow_champion()
        assert _predict_version(client) == "1"
        assert client.get("/health/model").json()["served_version"] == "1"
    assert alias_history.read_history(settings)[-1].kind == "rollback"


def test_reload_serving_reports_an_unreachable_app_and_never_raises(
    ct_env: Path, monkeypatch: pytest.MonkeyPatch
):
    from include.ops import rollback
    from include.ops.settings import get_settings

    monkeypatch.setenv("CT_APP_URL", "http://127.0.0.1:9")  # discard port: nothing listens
    assert "next poll" in rollback.reload_serving(get_settings())
