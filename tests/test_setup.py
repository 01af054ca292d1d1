"""The setup contract: pinned stack, no local torch label in the freeze, the CI runs the README command."""

from __future__ import annotations

import re

from tests.paths import ROOT


def test_constraints_has_no_local_cpu_label():
    text = (ROOT / "constraints.txt").read_text()
    assert "+cpu" not in text, "constraints.txt must pin torch==2.13.0, never the local +cpu wheel label"
    assert re.search(r"^torch==2\.13\.0$", text, re.M)


def test_requirements_are_pinned_and_in_constraints():
    def norm(name: str) -> str:
        return re.sub(r"[-_.]+", "-", name).lower()

    constraints = {
        norm(line.split("==")[0]): line.split("==")[1]
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if "==" in line
    }
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if not line:
            continue
        name = norm(re.split(r"[<>=\[]", line)[0])
        assert name in constraints, f"{name} is in requirements.txt but not frozen in constraints.txt"
        assert re.search(r"(==|<)", line), f"{line!r} is not pinned"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "make test" in ci
    assert "make test" in readme and "make demo" in readme


def test_airflow_home_is_inside_the_project_and_ignored():
    makefile = (ROOT / "Makefile").read_text()
    assert "export AIRFLOW_HOME ?= $(CURDIR)/var/airflow" in makefile
    assert "AIRFLOW__CORE__LOAD_EXAMPLES := False" in makefile
    assert "var/" in (ROOT / ".gitignore").read_text().splitlines()


def test_second_venv_run_installs_nothing():
    import subprocess

    out = subprocess.run(["make", "-s", "venv"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert "up to date" in out and "building" not in out, out
