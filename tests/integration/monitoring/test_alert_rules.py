"""Alert rules are code: promtool checks them, unit-tests both sides of every ``for:``, and the tests bite."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import yaml

from tests.integration.monitoring.monitoring_support import MONITORING, binary

RULES = MONITORING / "alerts" / "continual_transformer.rules.yml"
RULE_TESTS = MONITORING / "alerts" / "continual_transformer.rules.test.yml"
RUNBOOK_THRESHOLDS = {
    "TrainingLossHigh": "> 2.0",
    "GPUMemoryHigh": "> 90",
    "InferenceLatencyP95High": "> 1",
    "KnowledgeRetentionLow": "< 0.8",
}


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess:
    return subprocess.run([binary("promtool"), *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def alert_rules() -> list[dict]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r]


def test_promtool_check_rules_and_config():
    rules = promtool("check", "rules", str(RULES))
    assert rules.returncode == 0, rules.stdout + rules.stderr
    config = promtool("check", "config", str(MONITORING / "prometheus.yml"))
    assert config.returncode == 0, config.stdout + config.stderr


def test_promtool_unit_tests_pass():
    result = promtool("test", "rules", str(RULE_TESTS), cwd=RULE_TESTS.parent)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_severity_summary_and_a_description_restating_threshold_and_for():
    words = {"m": "minute", "h": "hour", "s": "second"}
    for rule in alert_rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in ("warning", "critical"), name
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], name
        amount, unit = re.fullmatch(r"(\d+)([smh])", rule["for"]).groups()
        assert f"{amount} {words[unit]}" in rule["annotations"]["description"], f"{name}: `for` not restated"
    by_name = {r["alert"]: r for r in alert_rules()}
    for name, threshold in RUNBOOK_THRESHOLDS.items():
        assert threshold in " ".join(by_name[name]["expr"].split()), name
        number = threshold.split()[-1]
        assert number in by_name[name]["annotations"]["description"], f"{name}: threshold not restated"
    assert {"JobNotSucceeding", "BackupStale"} <= set(by_name)


def test_every_alert_is_tested_on_both_sides_of_its_for():
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    cases: dict[str, list[bool]] = {}
    for group in tests:
        for case in group.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(bool(case.get("exp_alerts")))
    for rule in alert_rules():
        assert True in cases.get(rule["alert"], []), f"{rule['alert']}: no case where it fires"
        assert False in cases.get(rule["alert"], []), f"{rule['alert']}: no case where it must not fire yet"


def test_the_unit_tests_catch_a_shifted_for(tmp_path: Path):
    """Lengthening every `for:` by one evaluation must break the promtool tests (they check the boundary)."""
    shutil.copy(RULE_TESTS, tmp_path / RULE_TESTS.name)
    text = RULES.read_text()
    shifted = re.sub(r"(\n\s+for: )(\d+)m", lambda m: f"{m.group(1)}{int(m.group(2)) + 1}m", text)
    assert shifted != text
    (tmp_path / RULES.name).write_text(shifted)
    result = promtool("test", "rules", RULE_TESTS.name, cwd=tmp_path)
    assert result.returncode != 0
    failed = set(re.findall(r"alertname: (\w+)", result.stdout + result.stderr))
    assert {r["alert"] for r in alert_rules()} <= failed, failed
