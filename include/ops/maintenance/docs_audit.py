"""Monthly documentation check (runbook "Monthly Tasks"): every DAG, make target and endpoint of the serving app
is in README.md's runbook map. The endpoints come from the route table the app mounts, never from the app."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from include.ops import serving_routes
from include.ops.maintenance.report import FAIL, PASS, CheckResult


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
    """``METHOD /path`` of every route of the serving app, from its route table."""
    return serving_routes.endpoints()


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
