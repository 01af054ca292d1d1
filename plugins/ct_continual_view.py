"""Airflow plugin: a continual-learning view inside the Airflow UI, fed by a small JSON API over MLflow.

Mounted on the Airflow API server under ``/ct``:

- ``GET /ct/api/state``   the state of ``include.ops.cl_state.continual_state`` as JSON
- ``GET /ct/api/history`` one row per learned task (``learning_history``)
- ``GET /ct/view``        the page: its shell answers at once with a "Loading" state (no MLflow read), then
  fetches ``/ct/view/content`` and shows it
- ``GET /ct/view/content`` server-rendered HTML of the same state (heatmap, retention vs threshold, aliases,
  the alias history: every move of ``champion``/``challenger``, newest first)

The MLflow reads are cached (``include.ops.cl_state.cached_read``): a load after the first costs three cheap
calls until a run, version or alias move changes the store.

The UI embeds ``/ct/view`` as the nav entry "Continual learning" (``/plugin/continual-learning``).
Plugin FastAPI apps are not behind Airflow's auth, so every route checks the caller's Airflow JWT
(``Authorization: Bearer`` or the UI's ``_token`` cookie) itself. Module level stays light: MLflow and
Airflow's auth code are imported on the first request, not when schedulers and workers load plugins.
"""

from __future__ import annotations

import html
import logging
import math
from collections.abc import Callable
from typing import Any

from airflow.plugins_manager import AirflowPlugin
from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse

log = logging.getLogger(__name__)

URL_PREFIX = "/ct"
VIEW_ROUTE = "continual-learning"  # the Airflow UI shows the view at /plugin/continual-learning
StateLoader = Callable[[], dict[str, Any]]
HistoryLoader = Callable[[], list[dict[str, Any]]]

# viridis at 0, .25, .5, .75, 1: perceptually uniform and readable by colour-blind users
_VIRIDIS = [(68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37)]


def _load_state() -> dict[str, Any]:
    from include.ops.cl_state import fail_fast_http, state_from_settings

    with fail_fast_http():  # a page must not hang for MLflow's minutes of HTTP retries
        return state_from_settings()


def _load_history() -> list[dict[str, Any]]:
    from include.ops.cl_state import fail_fast_http, learning_history
    from include.ops.settings import get_settings

    s = get_settings()
    with fail_fast_http():
        return learning_history(s.mlflow_tracking_uri, s.mlflow_experiment, s.registered_model)


async def require_airflow_user(request: Request) -> Any:
    """Resolve the Airflow user from a Bearer token or the UI's ``_token`` cookie; 401/403 otherwise."""
    from airflow.api_fastapi.auth.managers.base_auth_manager import COOKIE_NAME_JWT_TOKEN
    from airflow.api_fastapi.core_api.security import resolve_user_from_token

    header = request.headers.get("authorization", "")
    token = header[7:] if header.lower().startswith("bearer ") else request.cookies.get(COOKIE_NAME_JWT_TOKEN)
    return await resolve_user_from_token(token)


def colour(value: float | None) -> str:
    """CSS ``rgb()`` of ``value`` in [0, 1] on the viridis scale; grey for a missing value."""
    if value is None or not math.isfinite(value):
        return "rgb(230,230,230)"
    x = min(1.0, max(0.0, value)) * (len(_VIRIDIS) - 1)
    i = min(int(x), len(_VIRIDIS) - 2)
    f = x - i
    r, g, b = (round(a + (c - a) * f) for a, c in zip(_VIRIDIS[i], _VIRIDIS[i + 1], strict=True))
    return f"rgb({r},{g},{b})"


def _text_colour(value: float | None) -> str:
    """Black on the light end of the scale, white on the dark end."""
    return "#000" if value is None or value >= 0.6 else "#fff"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def render_heatmap(acc_matrix: dict[str, Any] | None) -> str:
    """HTML table of R[i][j] (rows: after training task i; columns: evaluated on task j), coloured."""
    if not acc_matrix:
        return '<p class="empty" data-testid="heatmap-empty">No accuracy matrix logged yet.</p>'
    ids = acc_matrix["task_ids"]
    head = "".join(f'<th scope="col">{_e(t)}</th>' for t in ids)
    rows = []
    for i, row in enumerate(acc_matrix["matrix"]):
        cells = []
        for j in range(len(ids)):
            v = row[j] if j < len(row) else None
            cells.append(
                f'<td data-testid="cell-{i}-{j}" data-value="{_fmt(v, 4)}" '
                f'style="background:{colour(v)};color:{_text_colour(v)}" '
                f'title="R[{i}][{j}]">{_fmt(v, 2)}</td>'
            )
        label = ids[i] if i < len(ids) else f"#{i}"
        rows.append(f'<tr><th scope="row">after {_e(label)}</th>{"".join(cells)}</tr>')
    stops = ", ".join(colour(k / 10) for k in range(11))
    return (
        '<p class="meta">R[i][j]: accuracy on task j (column) after training task i (row); '
        "the diagonal is each task just after learning it.</p>"
        '<table class="heatmap" data-testid="heatmap">'
        f"<thead><tr><th></th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
        '<div class="legend"><span>0.0</span>'
        f'<span class="bar" style="background:linear-gradient(90deg, {stops})">'
        "</span><span>1.0</span></div>"
    )


def render_retention(rows: list[dict[str, Any]], threshold: float) -> str:
    """Table of retention per task with an SVG bar against the threshold, and a pass/below badge."""
    if not rows:
        return '<p class="empty" data-testid="retention-empty">No retention logged yet.</p>'
    width = 240
    body = []
    for r in rows:
        v = r["retention"]
        bar = 0 if v is None else round(min(1.0, max(0.0, v)) * width)
        tx = round(threshold * width)
        fill = "#2e7d32" if r["passed"] else ("#c62828" if r["passed"] is False else "#9e9e9e")
        svg = (
            f'<svg width="{width}" height="14" role="img" aria-label="retention {_fmt(v)}">'
            f'<rect width="{width}" height="14" fill="#eee"/><rect width="{bar}" height="14" fill="{fill}"/>'
            f'<line x1="{tx}" x2="{tx}" y1="0" y2="14" stroke="#000" stroke-dasharray="2,2"/></svg>'
        )
        badge = {True: "ok", False: "below", None: "n/a"}[r["passed"]]
        body.append(
            f'<tr data-testid="retention-{_e(r["task_id"])}" data-value="{_fmt(v, 4)}">'
            f'<th scope="row">{_e(r["task_id"])}</th><td class="num">{_fmt(v)}</td><td>{svg}</td>'
            f'<td><span class="badge {badge.replace("/", "")}">{badge}</span></td></tr>'
        )
    return (
        f'<table class="retention" data-testid="retention"><thead><tr><th>task</th><th>retention</th>'
        f"<th>vs threshold {threshold:.2f} (dashed)</th><th></th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def render_alias_history(rows: list[dict[str, Any]]) -> str:
    """Table of alias moves, newest first: seq, when (UTC), alias, from -> to, kind, DAG run, reason, approver."""
    if not rows:
        return '<p class="empty" data-testid="alias-history-empty">No alias moves recorded yet.</p>'
    import datetime as dt

    body = []
    for r in reversed(rows):
        when = dt.datetime.fromtimestamp(float(r["time"]), dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        to = (
            f'<a href="{_e(r["version_url"])}" target="_blank" rel="noopener">v{_e(r["to_version"])}</a>'
            if r.get("version_url")
            else _e(r.get("to_version") or "unset")
        )
        frm = f"v{_e(r['from_version'])}" if r.get("from_version") else "unset"
        run = " / ".join(_e(x) for x in (r.get("dag_id"), r.get("dag_run_id")) if x) or "–"
        body.append(
            f'<tr data-testid="alias-move-{_e(r["seq"])}"><td class="num">{_e(r["seq"])}</td><td>{when}</td>'
            f"<td>{_e(r['alias'])}</td><td>{frm} &rarr; {to}</td><td>{_e(r['kind'])}</td><td>{run}</td>"
            f"<td>{_e(r.get('reason'))}</td><td>{_e(r.get('approver') or '–')}</td></tr>"
        )
    return (
        '<table class="retention" data-testid="alias-history"><thead><tr><th>#</th><th>when (UTC)</th>'
        "<th>alias</th><th>move</th><th>kind</th><th>DAG run</th><th>reason</th><th>approver</th></tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _alias_card(info: dict[str, Any] | None, alias: str) -> str:
    if not info:
        return f'<div class="card" data-testid="{alias}"><h3>{alias}</h3><p class="empty">not set</p></div>'
    run = (
        f'<a href="{_e(info["run_url"])}" target="_blank" rel="noopener" data-testid="{alias}-run-link">'
        f"MLflow run {_e(info['run_id'][:8])}</a>"
        if info.get("run_url")
        else "no run"
    )
    gate = (
        f"<p>gate: {_e(info.get('gate'))} {_e(info.get('gate_reasons') or '')}</p>"
        if info.get("gate")
        else ""
    )
    return (
        f'<div class="card" data-testid="{alias}"><h3>{alias}</h3>'
        f'<p class="big"><a href="{_e(info["version_url"])}" target="_blank" rel="noopener">'
        f"version {_e(info['version'])}</a></p><p>task {_e(info.get('task_id'))} · {run}</p>{gate}</div>"
    )


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:16px;color:#1a1a1a;background:#fff}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:20px 0 8px} h3{margin:0 0 6px;font-size:14px}
.meta{color:#555;font-size:13px} .cards{display:flex;gap:12px;flex-wrap:wrap}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:160px}
.big{font-size:20px;margin:2px 0} table{border-collapse:collapse;font-size:13px}
.heatmap td{width:64px;height:36px;text-align:center;font-variant-numeric:tabular-nums;border:1px solid #fff}
.heatmap th{padding:4px 8px;font-weight:500}
.retention td,.retention th{padding:4px 10px;text-align:left} .num{font-variant-numeric:tabular-nums}
.legend{display:flex;align-items:center;gap:6px;font-size:12px;margin-top:4px}
.legend .bar{display:inline-block;width:200px;height:10px}
.badge{padding:1px 8px;border-radius:10px;font-size:12px;color:#fff}
.badge.ok{background:#2e7d32} .badge.below{background:#c62828} .badge.na{background:#9e9e9e}
.empty{color:#777} .error{background:#fdecea;border:1px solid #c62828;padding:10px;border-radius:6px}
.loading{color:#555;font-style:italic}
"""

# fills the shell with /ct/view/content (relative: "view/content" from /ct/view); the cookie goes along
_LOADER = """<script>
(async () => {
  const box = document.getElementById("ct-content");
  let html;
  try {
    html = await (await fetch("view/content", {credentials: "same-origin"})).text();
  } catch (err) {
    html = '<p class="error" data-testid="error">Could not reach the view: ' +
      String(err).replace(/[&<>]/g, "") + "</p>";
  }
  box.innerHTML = html;
  box.removeAttribute("aria-busy");
  box.dataset.testid = "content";
})();
</script>"""


def _page(body: str) -> str:
    """A whole HTML document around ``body``."""
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<title>Continual learning</title><style>{_CSS}</style></head><body>
<h1>Continual learning</h1>
{body}
</body></html>"""


def render_shell() -> str:
    """The page as first served: a "Loading" state, filled in by the browser from ``/ct/view/content``."""
    return _page(
        '<div id="ct-content" data-testid="loading" aria-busy="true">'
        '<p class="loading">Loading the continual-learning state from MLflow&hellip;</p></div>'
        '<noscript><p><a href="view/content">Open the state without JavaScript</a></p></noscript>' + _LOADER
    )


def render_body(state: dict[str, Any]) -> str:
    """The content of the page for one state dict (as returned by ``continual_state``)."""
    latest = state.get("latest_run") or {}
    mean = state.get("mean_retention")
    threshold = state["retention_threshold"]
    mean_cls = "ok" if mean is not None and mean >= threshold else ("below" if mean is not None else "na")
    exp_link = (
        f'<a href="{_e(state["experiment_url"])}" target="_blank" rel="noopener">'
        f"{_e(state['experiment'])}</a>"
        if state.get("experiment_url")
        else _e(state["experiment"])
    )
    latest_html = (
        f'<a href="{_e(latest["url"])}" target="_blank" rel="noopener" data-testid="latest-run-link">'
        f"{_e(latest.get('task_id'))} ({_e(latest['run_id'][:8])})</a>"
        if latest
        else "none"
    )
    below = state.get("below_threshold") or []
    below_txt = (
        "below threshold: " + _e(", ".join(below)) if below else "every task at or above the threshold"
    )
    learned = state["tasks_learned"]
    learned_ids = _e(", ".join(state["task_ids"])) or "none"
    model = _e(state["registered_model"])
    api = f"{URL_PREFIX}/api/state"
    return f"""<p class="meta">experiment {exp_link} · registered model <b>{model}</b> · data: <a href="{api}">{api}</a></p>
<div class="cards">
 <div class="card" data-testid="tasks-learned"><h3>tasks learned</h3><p class="big">{learned}</p>
  <p>{learned_ids}</p></div>
 <div class="card" data-testid="mean-retention"><h3>mean retention</h3>
  <p class="big"><span class="badge {mean_cls}">{_fmt(mean)}</span></p>
  <p data-testid="min-retention">min over old tasks {_fmt(state.get("min_retention"))} · threshold {threshold:.2f}</p></div>
 <div class="card" data-testid="latest-run"><h3>latest run</h3><p>{latest_html}</p>
  <p>new-task acc {_fmt(latest.get("new_task_acc"))} · avg acc {_fmt(latest.get("avg_acc"))}</p></div>
 {_alias_card(state.get("champion"), "champion")}
 {_alias_card(state.get("challenger"), "challenger")}
</div>
<h2>Accuracy matrix of the latest run</h2>
{render_heatmap(state.get("acc_matrix"))}
<h2>Retention per task (latest run)</h2>
<p class="meta" data-testid="below-threshold">{below_txt}</p>
{render_retention(state.get("retention") or [], threshold)}
<h2>Alias history (newest first)</h2>
<p class="meta">every move of champion / challenger: gate, approval, rollback, restore (make history)</p>
{render_alias_history(state.get("alias_history") or [])}"""


def render_page(state: dict[str, Any]) -> str:
    """The whole page for one state dict, rendered at once (what the shell shows once loaded)."""
    return _page(render_body(state))


def create_app(
    load_state: StateLoader = _load_state,
    load_history: HistoryLoader = _load_history,
    require_auth: bool = True,
) -> FastAPI:
    """The plugin's FastAPI app: ``load_*`` read MLflow; ``require_auth`` checks the Airflow JWT."""
    deps = [Depends(require_airflow_user)] if require_auth else []
    app = FastAPI(title="Continual learning", dependencies=deps, docs_url=None, redoc_url=None)

    def _state() -> dict[str, Any]:
        try:
            return load_state()
        except Exception as exc:  # store unreachable or broken: say so instead of a bare 500
            log.exception("reading the continual-learning state from MLflow failed")
            raise HTTPException(status_code=503, detail=f"MLflow state unavailable: {exc}") from exc

    @app.get("/api/state")
    def api_state() -> JSONResponse:
        """Continual-learning state as JSON."""
        return JSONResponse(_state())

    @app.get("/api/history")
    def api_history() -> JSONResponse:
        """One row per learned task, oldest first."""
        try:
            return JSONResponse(load_history())
        except Exception as exc:
            log.exception("reading the learning history from MLflow failed")
            raise HTTPException(status_code=503, detail=f"MLflow history unavailable: {exc}") from exc

    @app.get("/view", response_class=HTMLResponse)
    def view() -> HTMLResponse:
        """The continual-learning page: a "Loading" shell at once, filled from ``/view/content``."""
        return HTMLResponse(render_shell())

    @app.get("/view/content", response_class=HTMLResponse)
    def view_content() -> HTMLResponse:
        """The page's content for the current state (503 with the reason when MLflow fails)."""
        try:
            state = _state()
        except HTTPException as exc:
            return HTMLResponse(f'<p class="error" data-testid="error">{_e(exc.detail)}</p>', status_code=503)
        return HTMLResponse(render_body(state))

    return app


class ContinualLearningPlugin(AirflowPlugin):
    """Registers the ``/ct`` app and the "Continual learning" nav entry that embeds ``/ct/view``."""

    name = "continual_learning"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "Continual learning"}]
    external_views = [
        {
            "name": "Continual learning",
            "href": f"{URL_PREFIX}/view",
            "url_route": VIEW_ROUTE,
            "destination": "nav",
            "nav_top_level": True,
        }
    ]
