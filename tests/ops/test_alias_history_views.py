"""The alias history as operators see it: `make history` / `make alias-history` (the CLI) and the plugin view."""

from __future__ import annotations

import io
import json
from pathlib import Path

from tests.ops.alias_history_support import gate, registry


def _moves(ct_env: Path):
    from include.ops import rollback

    settings, _, results = registry(ct_env)
    for r in results[:2]:
        gate(settings, r)
    gate(settings, results[2], acc=0.1)
    rollback.rollback(settings, reason="answers drifted", reload=False)
    return settings


def _cli(argv: list[str]) -> tuple[int, str]:
    from include.ops import cli

    out = io.StringIO()
    return cli.main(argv, stdout=out), out.getvalue()


def test_the_cli_lists_every_alias_move(ct_env: Path):
    _moves(ct_env)
    code, text = _cli(["alias-history", "--no-color"])
    assert code == 0
    lines = text.splitlines()[1:]
    assert [ln.split()[3:7] for ln in lines] == [
        ["champion", "-", "->", "1"],
        ["champion", "1", "->", "2"],
        ["challenger", "-", "->", "3"],
        ["champion", "2", "->", "1"],
    ]
    assert "rollback" in lines[3] and "answers drifted" in lines[3]
    code, raw = _cli(["alias-history", "--json", "--limit", "1"])
    assert [m["kind"] for m in json.loads(raw)] == ["rollback"]
    _, history = _cli(["history", "--no-color"])  # make history: the moves after the learned runs
    assert "Alias moves" in history and "answers drifted" in history


def test_the_plugin_view_shows_the_alias_history(ct_env: Path):
    from include.ops import cl_state
    from plugins.ct_continual_view import render_page

    settings = _moves(ct_env)
    state = cl_state.state_from_settings(settings)
    assert [m["seq"] for m in state["alias_history"]] == [1, 2, 3, 4]
    page = render_page(state)
    assert 'data-testid="alias-history"' in page and 'data-testid="alias-move-4"' in page
    assert page.index("alias-move-4") < page.index("alias-move-1")  # newest first
    assert "answers drifted" in page
    assert 'data-testid="alias-history-empty"' in render_page({**state, "alias_history": []})
