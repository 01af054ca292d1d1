"""Monthly checks (runbook "Monthly Tasks"): security audit, capacity planning, performance review, docs."""

from __future__ import annotations

import ast
import json
import os
import re
import stat
import statistics
import subprocess
import sys
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psutil

from include.ops.maintenance import integrations
from include.ops.maintenance.probes import http_request
from include.ops.maintenance.report import FAIL, NOT_AVAILABLE, PASS, WARN, CheckResult
from include.ops.settings import PROJECT_ROOT, Settings

CODE_DIRS = ("dags", "include", "model", "plugins", "scripts", "bench")
SKIP_DIRS = {".venv", "var", ".git", "node_modules", "__pycache__", ".ruff_cache", "uncommitted", "tests"}
CONFIG_GLOBS = ("*.yml", "*.yaml", "*.json", "*.toml", "*.cfg", "*.ini", "*.env", ".env", ".env.*", "*.conf")
DAY = 86400.0


def bandit_scan(root: Path, dirs: Iterable[str] = CODE_DIRS) -> dict[str, Any]:
    """Run bandit over the project's code folders; findings grouped by severity."""
    targets = [str(root / d) for d in dirs if (root / d).is_dir()]
    cmd = [
        sys.executable,
        "-m",
        "bandit",
        "-r",
        *targets,
        "-f",
        "json",
        "-q",
        "-x",
        ",".join(sorted(SKIP_DIRS)),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    try:
        data = json.loads(proc.stdout)
    except json.JSONDecodeError as exc:
        raise RuntimeError(
            f"bandit produced no JSON (exit {proc.returncode}): {proc.stderr[-2000:]}"
        ) from exc
    findings = [
        {"severity": r["issue_severity"], "confidence": r["issue_confidence"], "test": r["test_id"],
         "file": os.path.relpath(r["filename"], root), "line": r["line_number"], "text": r["issue_text"]}
        for r in data.get("results", [])
    ]  # fmt: skip
    by = {s: sum(f["severity"] == s for f in findings) for s in ("HIGH", "MEDIUM", "LOW")}
    return {"targets": [os.path.relpath(t, root) for t in targets], "counts": by, "findings": findings,
            "errors": data.get("errors", [])}  # fmt: skip


_TOKEN_PATTERNS = (
    ("aws_access_key", re.compile(r"\b(AKIA|ASIA)[0-9A-Z]{16}\b")),
    ("private_key", re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----")),
)
_URL_CREDENTIALS = re.compile(r"[a-z][a-z0-9+.-]*://[^\s:/@'\"]*:(?P<value>[^\s@'\"]+)@", re.IGNORECASE)
_KEY_VALUE = re.compile(r"""^\s*(?:-\s*)?(?:export\s+)?["']?(?P<key>[\w.-]+)["']?\s*[:=]\s*(?P<value>.*)$""")
_SECRET_KEY = re.compile(
    r"(password|passwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key)", re.IGNORECASE
)
_REFERENCE_KEY = re.compile(r"(name|file|path|ref|dir|arn|_env|expiry|ttl|seconds|length)$", re.IGNORECASE)


def _literal(raw: str) -> str:
    """A config value without quotes, trailing comma or trailing comment."""
    value = raw.strip()
    if value and value[0] in "\"'":
        end = value.find(value[0], 1)
        return value[1:end] if end > 0 else value[1:]
    return re.split(r"\s+#", value, maxsplit=1)[0].rstrip(",").strip()


def _placeholder(value: str) -> bool:
    """References and obvious templates, not secrets: ${VAR}, {{ x }}, <x>, change-me, UPPER_CASE, numbers."""
    low = value.lower()
    return (
        not value
        or any(mark in value for mark in ("${", "{{", "<", "%("))
        or value.startswith("$")
        or low in ("null", "none", "true", "false", "~", "''", '""')
        or low.startswith(("change-me", "changeme", "example", "xxx", "***"))
        or re.fullmatch(r"[A-Z_]+", value) is not None
        or re.fullmatch(r"[\d.]+[smhd]?", value) is not None
    )


def _config_files(root: Path) -> Iterable[Path]:
    seen: set[Path] = set()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d not in SKIP_DIRS]
        for name in filenames:
            path = Path(dirpath) / name
            if (
                path not in seen
                and any(path.match(g) for g in CONFIG_GLOBS)
                and path.stat().st_size < 2_000_000
            ):
                seen.add(path)
                yield path


def scan_config_secrets(root: Path) -> list[dict[str, Any]]:
    """Literal secrets in configuration files: keys, passwords/tokens given as literal values, credentials in URLs.

    Comments, ``${VAR}``/``{{ }}`` references, ``change-me`` placeholders and ``*_NAME``/``*_FILE`` style
    references are not findings. Values are redacted in the result.
    """
    findings = []
    for path in _config_files(root):
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        for lineno, line in enumerate(text.splitlines(), 1):
            if line.lstrip().startswith(("#", "//", ";")):
                continue
            line = re.split(r"\s+#\s", line, maxsplit=1)[0]  # a trailing comment is documentation, not config
            kind, value = None, ""
            for name, rx in _TOKEN_PATTERNS:
                if match := rx.search(line):
                    kind, value = name, match.group(0)
            if kind is None and (match := _URL_CREDENTIALS.search(line)) and not _placeholder(match["value"]):
                kind, value = "url_credentials", match["value"]
            if kind is None and (match := _KEY_VALUE.match(line)):
                key, literal = match["key"], _literal(match["value"])
                if _SECRET_KEY.search(key) and not _REFERENCE_KEY.search(key) and not _placeholder(literal):
                    kind, value = "assigned_secret", literal
            if kind is not None:
                findings.append({"file": os.path.relpath(path, root), "line": lineno, "kind": kind,
                                 "value": value[:2] + "***"})  # fmt: skip
    return findings


def check_permissions(folders: Iterable[Path]) -> dict[str, Any]:
    """World-writable or group-writable entries in sensitive folders (checkpoints, backups), and their modes."""
    out: dict[str, Any] = {"folders": {}, "world_writable": [], "group_writable": [], "world_readable": 0}
    uid = os.getuid()
    for folder in folders:
        if not folder.exists():
            out["folders"][str(folder)] = "missing"
            continue
        out["folders"][str(folder)] = oct(stat.S_IMODE(folder.stat().st_mode))
        for path in [folder, *folder.rglob("*")]:
            st = path.lstat()
            if stat.S_ISLNK(st.st_mode):
                continue
            mode = stat.S_IMODE(st.st_mode)
            if mode & stat.S_IWOTH:
                out["world_writable"].append(f"{path} ({oct(mode)})")
            elif mode & stat.S_IWGRP and st.st_uid == uid:
                out["group_writable"].append(f"{path} ({oct(mode)})")
            if mode & stat.S_IROTH:
                out["world_readable"] += 1
    return out


def security_audit(paths: Settings, root: Path = PROJECT_ROOT) -> CheckResult:
    """bandit (HIGH fails, MEDIUM warns), literal secrets in config files (fail), folder permissions.

    World-writable checkpoint/backup entries fail; group-writable ones warn.
    """
    bandit = bandit_scan(root)
    secrets = scan_config_secrets(root)
    perms = check_permissions([paths.checkpoint_dir, paths.backup_dir])
    details = {"bandit": bandit, "config_secrets": secrets, "permissions": perms}
    c = bandit["counts"]
    summary = (
        f"bandit HIGH={c['HIGH']} MEDIUM={c['MEDIUM']} LOW={c['LOW']}; {len(secrets)} secret(s) in config files; "
        f"{len(perms['world_writable'])} world-writable, {len(perms['group_writable'])} group-writable entries"
    )
    if c["HIGH"] or secrets or perms["world_writable"]:
        return CheckResult("security_audit", FAIL, summary, details)
    if c["MEDIUM"] or perms["group_writable"]:
        return CheckResult("security_audit", WARN, summary, details)
    return CheckResult("security_audit", PASS, summary, details)


def growth(folder: Path, window_days: float = 30.0, now: float | None = None) -> dict[str, Any]:
    """Bytes under ``folder`` now and added per day over the last ``window_days`` (by file modification time)."""
    now = now or time.time()
    files = [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink()] if folder.exists() else []
    sizes = [(p.stat().st_mtime, p.stat().st_size) for p in files]
    total = sum(s for _, s in sizes)
    recent = sum(s for t, s in sizes if t >= now - window_days * DAY)
    oldest = min((t for t, _ in sizes), default=now)
    span_days = max(1.0, min(window_days, (now - oldest) / DAY))  # a young folder grows over its own age
    return {"folder": str(folder), "files": len(files), "bytes": total, "bytes_per_day": recent / span_days}


def gpu_headroom() -> list[dict[str, Any]]:
    """Free and total memory of each CUDA device (empty without CUDA)."""
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        out.append({"device": f"gpu_{i}", "free_bytes": free, "total_bytes": total,
                    "headroom_pct": round(100 * free / total, 1)})  # fmt: skip
    return out


def capacity_planning(
    paths: Settings, window_days: float = 30.0, warn_days: float = 90.0, fail_days: float = 14.0
) -> CheckResult:
    """Growth of checkpoints, backups and logs, days until the disk holding them is full, GPU headroom.

    Fails under ``fail_days`` of disk left at the current growth, warns under ``warn_days``.
    """
    folders = {"checkpoints": paths.state_dir, "backups": paths.backup_dir, "logs": paths.log_dir,
               "mlflow": paths.var_dir / "mlflow"}  # fmt: skip
    grown = {name: growth(folder, window_days) for name, folder in folders.items()}
    probe = paths.var_dir if paths.var_dir.exists() else PROJECT_ROOT
    disk = psutil.disk_usage(str(probe))
    per_day = sum(g["bytes_per_day"] for g in grown.values())
    days_left = disk.free / per_day if per_day > 0 else None
    gpus = gpu_headroom()
    details = {"window_days": window_days, "growth": grown, "growth_bytes_per_day": per_day,
               "disk": {"path": str(probe), "free_bytes": disk.free, "total_bytes": disk.total,
                        "used_pct": disk.percent},
               "days_until_full": round(days_left, 1) if days_left is not None else None,
               "gpu": gpus or "no CUDA device on this host"}  # fmt: skip
    left = "never at the current growth" if days_left is None else f"{days_left:.0f} days"
    summary = f"growth {per_day / 2**20:.2f} MiB/day; disk full in {left}; "
    summary += ", ".join(f"{g['device']} {g['headroom_pct']}% free" for g in gpus) if gpus else "no GPU"
    if days_left is not None and days_left < fail_days:
        return CheckResult("capacity_planning", FAIL, summary + f" (< {fail_days:g} days)", details)
    if (days_left is not None and days_left < warn_days) or any(g["headroom_pct"] < 10 for g in gpus):
        return CheckResult("capacity_planning", WARN, summary, details)
    return CheckResult("capacity_planning", PASS, summary, details)


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def measure_app_latency(app_url: str, requests: int = 40) -> dict[str, Any]:
    """Round trips to ``/health`` (network latency) and ``/predict`` with one image (inference latency)."""
    base = app_url.rstrip("/")
    health = [http_request(base + "/health", timeout=5) for _ in range(10)]
    image = {"instances": [[(i * 7) % 17 for i in range(64)]]}
    preds = [http_request(base + "/predict", "POST", image, timeout=10) for _ in range(requests)]
    ok_health = [r.latency_ms for r in health if r.ok]
    ok_preds = [r.latency_ms for r in preds if r.ok]
    return {
        "health_ms_median": statistics.median(ok_health) if ok_health else None,
        "predict_ms_p95": _p95(ok_preds) if ok_preds else None,
        "predict_ok": len(ok_preds),
        "predict_errors": sorted({str(r.error or r.status) for r in preds if not r.ok}),
    }


def _item(name: str, target: str, measured: Any, ok: bool | None, note: str = "") -> dict[str, Any]:
    status = "n/a" if ok is None else "met" if ok else "not met"
    return {"item": name, "target": target, "measured": measured, "status": status, "note": note}


def performance_review(
    paths: Settings,
    app_url: str | None,
    min_train_samples_per_s: float = 1000.0,
    prometheus_url: str | None = None,
    quick: bool = False,
) -> CheckResult:
    """Throughput per batch size with the recommendation (``include.ops.perf``), and the runbook's
    "Optimization Checklist" with each item's measured value. Unmet items warn; n/a items say why.
    """
    sweep_fn = integrations.find("include.ops.perf", "batch_size_sweep")
    details: dict[str, Any] = {}
    sweeps: dict[str, Any] = {}
    if sweep_fn is not None:
        steps, warmup = (3, 1) if quick else (20, 3)
        for mode, sizes in (
            ("inference", [1, 8, 32, 128]),
            ("train", [16, 32, 64] if quick else [16, 32, 64, 128, 256]),
        ):
            sweeps[mode] = sweep_fn(sizes, mode=mode, steps=steps, warmup=warmup)
        details["throughput"] = {
            mode: {"per_batch_size": {r["batch_size"]: r.get("samples_per_second") for r in rep["results"]},
                   "recommended_batch_size": rep.get("recommended_batch_size"), "reason": rep.get("reason"),
                   "device": rep.get("device_name")}
            for mode, rep in sweeps.items()
        }  # fmt: skip
    else:
        details["throughput"] = "not available: " + integrations.missing("include.ops.perf")
    checklist = []
    gpus = gpu_headroom()
    if gpus:
        used = max(100 - g["headroom_pct"] for g in gpus)
        checklist.append(_item("GPU memory utilization", "> 80%", f"{used:.1f}%", used > 80))
    else:
        checklist.append(_item("GPU memory utilization", "> 80%", None, None, "no CUDA device on this host"))
    per_core = psutil.cpu_percent(interval=1.0, percpu=True)
    spread = max(per_core) - min(per_core)
    checklist.append(_item("CPU utilization balanced across cores", "spread < 25 points",
                           {"per_core_pct": per_core, "spread": round(spread, 1)}, spread < 25))  # fmt: skip
    iowait = getattr(psutil.cpu_times_percent(interval=1.0), "iowait", None)
    checklist.append(_item("I/O wait time", "< 10%", iowait, None if iowait is None else iowait < 10))
    app = measure_app_latency(app_url) if app_url else None
    details["app"] = app
    net = app["health_ms_median"] if app else None
    checklist.append(_item("Network latency", "< 100 ms", net, None if net is None else net < 100,
                           "" if app_url else "no app URL"))  # fmt: skip
    leak = _memory_trend(prometheus_url)
    checklist.append(_item("Memory usage stable (no leaks)", "RSS growth < 10%/week", leak.get("growth_pct"),
                           leak.get("ok"), leak.get("note", "")))  # fmt: skip
    p95 = app["predict_ms_p95"] if app else None
    checklist.append(_item("Inference latency P95", "< 500 ms", p95, None if p95 is None else p95 < 500,
                           "" if p95 is not None else "no /predict answer from the app"))  # fmt: skip
    train_best = None
    if "train" in sweeps:
        rates = [
            r.get("samples_per_second") for r in sweeps["train"]["results"] if r.get("samples_per_second")
        ]
        train_best = max(rates) if rates else None
    checklist.append(_item("Training throughput", f"> {min_train_samples_per_s:g} samples/s", train_best,
                           None if train_best is None else train_best > min_train_samples_per_s))  # fmt: skip
    details["checklist"] = checklist
    unmet = [c["item"] for c in checklist if c["status"] == "not met"]
    na = [c["item"] for c in checklist if c["status"] == "n/a"]
    summary = f"{len(checklist) - len(unmet) - len(na)} met, {len(unmet)} not met, {len(na)} n/a"
    if sweep_fn is None:
        return CheckResult(
            "performance_review", NOT_AVAILABLE, summary + "; batch-size sweep not available", details
        )
    rec = details["throughput"]["inference"]["recommended_batch_size"]
    summary += f"; recommended inference batch size {rec}"
    if unmet:
        return CheckResult("performance_review", WARN, summary + f" (not met: {', '.join(unmet)})", details)
    return CheckResult("performance_review", PASS, summary, details)


def _memory_trend(prometheus_url: str | None) -> dict[str, Any]:
    """Growth of the app's RSS over the last week from Prometheus (``process_resident_memory_bytes``)."""
    if not prometheus_url:
        return {"ok": None, "note": "PROMETHEUS_URL is unset: no RSS history"}
    from urllib.parse import urlencode

    selector = 'process_resident_memory_bytes{job="continual-transformer-app"}'
    queries = {"now": f"max({selector})", "week_ago": f"max({selector} offset 7d)"}
    values: dict[str, float | None] = {}
    for key, query in queries.items():
        res = http_request(
            f"{prometheus_url.rstrip('/')}/api/v1/query?{urlencode({'query': query})}", timeout=15
        )
        series = res.body.get("data", {}).get("result", []) if res.ok and isinstance(res.body, dict) else []
        values[key] = float(series[0]["value"][1]) if series else None
    now, before = values["now"], values["week_ago"]
    if now is None or before is None or before <= 0:
        return {"ok": None, "note": "not enough RSS history in Prometheus (needs 7 days)", "values": values}
    pct = 100 * (now - before) / before
    return {"ok": pct < 10, "growth_pct": round(pct, 1), "values": values}


def dag_ids(dags_dir: Path) -> list[str]:
    """DAG ids defined in ``dags_dir`` (``@dag`` functions and ``DAG(dag_id=...)``), read with ``ast``."""
    ids = []
    for path in sorted(dags_dir.glob("*.py")):
        if path.name.startswith("_"):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef):
                for deco in node.decorator_list:
                    call = deco if isinstance(deco, ast.Call) else None
                    name = call.func if call else deco
                    if getattr(name, "id", getattr(name, "attr", None)) == "dag":
                        explicit = [k.value.value for k in (call.keywords if call else [])
                                    if k.arg == "dag_id" and isinstance(k.value, ast.Constant)]  # fmt: skip
                        ids.append(explicit[0] if explicit else node.name)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DAG":
                for k in node.keywords:
                    if k.arg == "dag_id" and isinstance(k.value, ast.Constant):
                        ids.append(k.value.value)
    return sorted(set(ids))


def make_targets(root: Path) -> list[str]:
    """Documented make targets (``target: ... ## help``) of the Makefile and ``mk/*.mk``."""
    targets = set()
    for path in [root / "Makefile", *sorted((root / "mk").glob("*.mk"))]:
        if path.exists():
            targets.update(re.findall(r"^([A-Za-z0-9_.-]+):[^=\n]*##", path.read_text(), flags=re.MULTILINE))
    return sorted(targets)


def app_endpoints() -> list[str]:
    """``METHOD /path`` of every route of the serving app (docs routes excluded)."""
    from model.serving.app import create_app

    out = set()
    for route in create_app().routes:
        path = getattr(route, "path", "")
        if path in ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"):
            continue
        for method in sorted(getattr(route, "methods", None) or []):
            if method != "HEAD":
                out.add(f"{method} {path}")
    return sorted(out)


def runbook_map_section(readme: str) -> str | None:
    """The README's "Runbook map" section (heading to the next heading of the same or higher level)."""
    match = re.search(r"^(#+)\s*.*runbook map.*$", readme, flags=re.IGNORECASE | re.MULTILINE)
    if not match:
        return None
    level = len(match.group(1))
    rest = readme[match.end() :]
    end = re.search(rf"^#{{1,{level}}}\s", rest, flags=re.MULTILINE)
    return rest[: end.start()] if end else rest


def documentation_check(
    readme_path: Path, dags: list[str], targets: list[str], endpoints: list[str]
) -> CheckResult:
    """Every DAG, documented make target and endpoint appears in README.md's runbook map; missing ones listed."""
    if not readme_path.exists():
        return CheckResult("documentation", FAIL, f"{readme_path} does not exist")
    section = runbook_map_section(readme_path.read_text(encoding="utf-8"))
    if section is None:
        return CheckResult("documentation", FAIL, f"{readme_path.name} has no 'Runbook map' section")

    def present(token: str) -> bool:
        return re.search(rf"(?<![\w/-]){re.escape(token)}(?![\w/-])", section) is not None

    missing = {
        "dags": [d for d in dags if not present(d)],
        "make_targets": [t for t in targets if not present(f"make {t}") and not present(t)],
        "endpoints": [e for e in endpoints if not present(e.split(" ", 1)[1])],
    }
    details = {"readme": str(readme_path), "dags": dags, "make_targets": targets, "endpoints": endpoints,
               "missing": missing}  # fmt: skip
    total = sum(len(v) for v in missing.values())
    counts = f"{len(dags)} DAGs, {len(targets)} make targets, {len(endpoints)} endpoints"
    if total:
        listed = "; ".join(f"{k}: {', '.join(v)}" for k, v in missing.items() if v)
        return CheckResult("documentation", FAIL, f"{total} missing from the runbook map ({listed})", details)
    return CheckResult("documentation", PASS, f"runbook map covers all {counts}", details)
