"""Smoke tests against a running stack (runbook "Post-Deployment Verification", ``make test-smoke``).

    python scripts/smoke_test.py                                   # compose defaults on localhost
    python scripts/smoke_test.py --app-url http://10.0.0.5:8000 --json
    CT_SMOKE_APP_URL=... CT_SMOKE_AIRFLOW_URL=... CT_SMOKE_MLFLOW_URL=... python scripts/smoke_test.py

Checks: the app's health, aggregate health, metrics and one prediction; Airflow's health (metadata DB,
scheduler, DAG processor), a token from ``POST /auth/token`` and the expected DAGs listed by ``/api/v2/dags``;
MLflow's health and experiment search; optionally Prometheus and the Pushgateway. Prints a PASS/FAIL table
with the reason of every failure; exit 0 only when every check passed (1 otherwise, e.g. stack unreachable).

Airflow credentials, first found: ``--airflow-user``/``--airflow-password``, env ``AIRFLOW_ADMIN_USER`` /
``AIRFLOW_ADMIN_PASSWORD``, the deployment's ``.env`` (``--env-file``), or ``--airflow-password-file``
(``airflow standalone``'s ``simple_auth_manager_passwords.json.generated``).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# One real 8x8 digit (a "0" from scikit-learn's digits set), raw intensities 0..16.
DIGIT_ZERO = [
    0, 0, 5, 13, 9, 1, 0, 0, 0, 0, 13, 15, 10, 15, 5, 0, 0, 3, 15, 2, 0, 11, 8, 0, 0, 4, 12, 0, 0, 8, 8, 0,
    0, 5, 8, 0, 0, 9, 8, 0, 0, 4, 11, 0, 1, 12, 7, 0, 0, 2, 14, 5, 10, 12, 0, 0, 0, 0, 6, 13, 10, 0, 0, 0,
]  # fmt: skip


@dataclass
class Check:
    """Outcome of one smoke check."""

    name: str
    ok: bool
    detail: str
    seconds: float


def _request(
    method: str, url: str, body: Any = None, token: str | None = None, timeout: float = 10
) -> tuple[int, bytes]:
    """``(status, body)`` of an HTTP request; 4xx/5xx are returned, connection errors raise URLError."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"only http(s) URLs are checked, got {url!r}")
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - scheme checked above
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - scheme checked above
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _json(method: str, url: str, body: Any = None, token: str | None = None, expect: int = 200) -> Any:
    status, raw = _request(method, url, body, token)
    if status != expect:
        raise AssertionError(f"HTTP {status} from {url}: {raw[:200].decode(errors='replace')}")
    return json.loads(raw)


class SmokeRun:
    """Runs checks, timing each and turning exceptions into failures with their reason."""

    def __init__(self) -> None:
        self.checks: list[Check] = []

    def run(self, name: str, fn: Callable[[], str]) -> bool:
        """Run ``fn`` (returns a detail string, raises on failure) as check ``name``."""
        start = time.perf_counter()
        try:
            detail, ok = fn(), True
        except urllib.error.URLError as exc:
            detail, ok = f"unreachable: {exc.reason}", False
        except (OSError, TimeoutError) as exc:
            detail, ok = f"unreachable: {exc}", False
        except (AssertionError, KeyError, ValueError, TypeError) as exc:
            detail, ok = (
                f"{type(exc).__name__}: {exc}" if not isinstance(exc, AssertionError) else str(exc),
                False,
            )
        self.checks.append(Check(name, ok, detail, time.perf_counter() - start))
        return ok


def check_app(run: SmokeRun, url: str) -> None:
    """Health, aggregate health, metrics and one prediction of the serving app."""

    def health() -> str:
        body = _json("GET", f"{url}/health")
        assert body.get("status") == "ok", f"status is {body.get('status')!r}"
        return f"ok, up {body.get('uptime_s')} s"

    def health_all() -> str:
        status, raw = _request("GET", f"{url}/health/all")
        body = json.loads(raw)
        assert status == 200, (
            f"HTTP {status}: {body.get('status')} {body.get('errors') or body.get('issues')}"
        )
        return f"{body['status']}" + (
            f" ({'; '.join(map(str, body.get('issues', [])))})" if body.get("issues") else ""
        )

    def metrics() -> str:
        status, raw = _request("GET", f"{url}/metrics")
        assert status == 200, f"HTTP {status}"
        text = raw.decode()
        names = {ln.split("{")[0].split(" ")[0] for ln in text.splitlines() if ln and not ln.startswith("#")}
        ours = sorted(n for n in names if n.startswith("continual_transformer_"))
        assert ours, "no continual_transformer_* metric exposed"
        return f"{len(ours)} continual_transformer_* series"

    def predict() -> str:
        body = _json("POST", f"{url}/predict", {"instances": [DIGIT_ZERO]})
        probs = body["probabilities"][0]
        assert len(body["classes"]) == 1, f"expected one class, got {body['classes']}"
        assert math.isclose(sum(probs), 1.0, abs_tol=1e-3), f"probabilities sum to {sum(probs)}"
        return f"class {body['classes'][0]} (p={max(probs):.2f}) from {body['model_source']} v{body['model_version']}"

    run.run("app /health", health)
    run.run("app /health/all", health_all)
    run.run("app /metrics", metrics)
    run.run("app /predict", predict)


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=value`` pairs of a docker-compose env file (comments and blank lines skipped); {} if absent."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    for line in path.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key and not key.startswith("#"):
            values[key.strip()] = value.strip().strip("'\"")
    return values


def _airflow_password(args: argparse.Namespace, env_file: dict[str, str]) -> str | None:
    if args.airflow_password:
        return args.airflow_password
    if env_file.get("AIRFLOW_ADMIN_PASSWORD"):
        return env_file["AIRFLOW_ADMIN_PASSWORD"]
    if args.airflow_password_file and Path(args.airflow_password_file).exists():
        return json.loads(Path(args.airflow_password_file).read_text()).get(args.airflow_user)
    return None


def check_airflow(run: SmokeRun, url: str, user: str, password: str | None, expect_dags: list[str]) -> None:
    """Airflow's component health, a token, and the expected DAGs through the REST API v2."""

    def health() -> str:
        body = _json("GET", f"{url}/api/v2/monitor/health")
        bad = {
            k: v.get("status")
            for k, v in body.items()
            if isinstance(v, dict) and v.get("status") != "healthy"
        }
        required = ("metadatabase", "scheduler", "dag_processor")
        missing = [k for k in required if k not in body]
        assert not missing and not {k: v for k, v in bad.items() if k in required}, (
            f"unhealthy: {bad or missing}"
        )
        return ", ".join(f"{k} {v.get('status')}" for k, v in body.items() if isinstance(v, dict))

    state: dict[str, str] = {}

    def token() -> str:
        assert password, (
            "no Airflow password (--airflow-password, AIRFLOW_ADMIN_PASSWORD or --airflow-password-file)"
        )
        state["token"] = _json(
            "POST", f"{url}/auth/token", {"username": user, "password": password}, expect=201
        )["access_token"]
        return f"token for {user}"

    def dags() -> str:
        assert "token" in state, "no token"
        body = _json("GET", f"{url}/api/v2/dags?limit=100", token=state["token"])
        ids = sorted(d["dag_id"] for d in body["dags"])
        missing = [d for d in expect_dags if d not in ids]
        assert not missing, f"DAGs missing: {missing} (listed: {ids})"
        return f"{len(ids)} DAGs: {', '.join(ids)}"

    run.run("airflow /api/v2/monitor/health", health)
    run.run("airflow POST /auth/token", token)
    run.run("airflow /api/v2/dags", dags)


def check_mlflow(run: SmokeRun, url: str) -> None:
    """MLflow's health and its REST API."""

    def health() -> str:
        status, raw = _request("GET", f"{url}/health")
        assert status == 200, f"HTTP {status}"
        return raw.decode().strip()[:40]

    def experiments() -> str:
        body = _json("POST", f"{url}/api/2.0/mlflow/experiments/search", {"max_results": 100})
        names = sorted(e["name"] for e in body.get("experiments", []))
        return f"{len(names)} experiments: {', '.join(names)}"

    run.run("mlflow /health", health)
    run.run("mlflow experiments/search", experiments)


def check_prometheus_stack(run: SmokeRun, prometheus: str | None, pushgateway: str | None) -> None:
    """Readiness of Prometheus and the Pushgateway when their URLs are given."""
    for name, url in (("prometheus", prometheus), ("pushgateway", pushgateway)):
        if url:

            def ready(url: str = url) -> str:
                status, raw = _request("GET", f"{url}/-/ready")
                assert status == 200, f"HTTP {status}"
                return raw.decode().strip()[:60]

            run.run(f"{name} /-/ready", ready)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns 0 when every check passed, 1 otherwise."""
    env = os.environ.get
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--app-url", default=env("CT_SMOKE_APP_URL", "http://localhost:8000"))
    parser.add_argument("--airflow-url", default=env("CT_SMOKE_AIRFLOW_URL", "http://localhost:8080"))
    parser.add_argument("--mlflow-url", default=env("CT_SMOKE_MLFLOW_URL", "http://localhost:5000"))
    parser.add_argument("--prometheus-url", default=env("CT_SMOKE_PROMETHEUS_URL"), help="checked when given")
    parser.add_argument(
        "--pushgateway-url", default=env("CT_SMOKE_PUSHGATEWAY_URL"), help="checked when given"
    )
    parser.add_argument(
        "--env-file",
        type=Path,
        default=Path(env("CT_ENV_FILE", ".env")),
        help="the deployment's .env: Airflow admin credentials when not given otherwise",
    )
    parser.add_argument("--airflow-user", default=env("AIRFLOW_ADMIN_USER"))
    parser.add_argument("--airflow-password", default=env("AIRFLOW_ADMIN_PASSWORD"))
    parser.add_argument(
        "--airflow-password-file",
        default=env("CT_SMOKE_AIRFLOW_PASSWORD_FILE")
        or str(Path(env("AIRFLOW_HOME", "var/airflow")) / "simple_auth_manager_passwords.json.generated"),
    )
    parser.add_argument("--expect-dag", action="append", default=None, help="DAG id that must be listed")
    parser.add_argument("--skip", default="", help="comma-separated: app,airflow,mlflow")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--wait", type=float, default=0, help="retry for up to this many seconds (after a deploy)"
    )
    args = parser.parse_args(argv)
    env_file = read_env_file(args.env_file)
    args.airflow_user = args.airflow_user or env_file.get("AIRFLOW_ADMIN_USER") or "admin"
    password = _airflow_password(args, env_file)
    skip = {s.strip() for s in args.skip.split(",") if s.strip()}
    expect = args.expect_dag if args.expect_dag is not None else ["continual_training"]

    deadline = time.monotonic() + args.wait
    while True:
        run = SmokeRun()
        if "app" not in skip:
            check_app(run, args.app_url.rstrip("/"))
        if "airflow" not in skip:
            check_airflow(run, args.airflow_url.rstrip("/"), args.airflow_user, password, expect)
        if "mlflow" not in skip:
            check_mlflow(run, args.mlflow_url.rstrip("/"))
        check_prometheus_stack(run, args.prometheus_url, args.pushgateway_url)
        failed = [c for c in run.checks if not c.ok]
        if not failed or time.monotonic() >= deadline:
            break
        print(
            f"waiting: {len(failed)} check(s) failing ({', '.join(c.name for c in failed)})", file=sys.stderr
        )
        time.sleep(min(10.0, max(0.0, deadline - time.monotonic())))

    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in run.checks]}, indent=2))
    else:
        width = max(len(c.name) for c in run.checks)
        for c in run.checks:
            print(f"{'PASS' if c.ok else 'FAIL'}  {c.name:<{width}}  {c.seconds * 1e3:6.0f} ms  {c.detail}")
        verdict = "all passed" if not failed else f"{len(failed)} FAILED: {', '.join(c.name for c in failed)}"
        print(f"smoke tests: {len(run.checks) - len(failed)}/{len(run.checks)} passed; {verdict}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
