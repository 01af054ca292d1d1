"""`make validate-data` CLI: readable per-file report, exit codes, and releasing a fixed quarantined file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from tests.ops.validation.helpers import land, task_text
from tests.paths import ROOT


def test_report_exit_codes_and_release(val_env, split_digits, capsys, tmp_path):
    from include.ops.validation.cli import main

    settings = val_env
    land(settings, "task_0.csv", task_text(split_digits, 0))
    land(settings, "task_1.csv", task_text(split_digits, 1).replace(",train\n", ",training\n", 1))

    assert main(["validate"]) == 1
    out = capsys.readouterr().out
    assert f"Landing zone: {settings.landing_dir} (local)" in out
    assert "task_0.csv               VALIDATED  task_0       360  -> " in out
    assert "task_1.csv               REJECTED   task_1" in out
    assert "expect_column_values_to_be_in_set [split]" in out and "report:" in out
    assert out.rstrip().endswith("1 validated, 1 rejected, 0 skipped")

    assert main(["quarantine"]) == 0
    listing = capsys.readouterr().out
    folder = json.loads((settings.quarantine_dir / "index.json").read_text())["entries"][0]["folder"]
    assert folder in listing and "task_1.csv: failed expectations" in listing

    fixed = tmp_path / "fixed.csv"
    fixed.write_text(task_text(split_digits, 1))
    assert main(["release", folder, "--file", str(fixed)]) == 0
    assert (settings.landing_dir / "task_1.csv").read_bytes() == fixed.read_bytes()
    entry = json.loads((settings.quarantine_dir / "index.json").read_text())["entries"][0]
    assert entry["released"][0]["to"] == str(settings.landing_dir / "task_1.csv")
    assert Path(entry["file"]).exists(), "the quarantined original is kept"
    capsys.readouterr()

    assert main(["validate", "--json"]) == 0
    records = {r["name"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert records["task_0.csv"]["status"] == "skipped" and records["task_1.csv"]["status"] == "validated"

    assert main(["release", "no-such-folder"]) == 2


def test_validate_without_manifest_exits_2(val_env, capsys):
    from include.ops.validation.cli import main

    (val_env.landing_dir / "manifest.json").unlink()
    land(val_env, "task_0.csv", "f0,label,split\n")
    assert main([]) == 2
    assert "no manifest.json in the landing zone" in capsys.readouterr().err
    assert (val_env.landing_dir / "task_0.csv").exists(), "nothing is quarantined when validation cannot run"


def test_make_validate_data_on_an_empty_landing_zone(val_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAKE")}
    out = subprocess.run(
        ["make", "--no-print-directory", "validate-data"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "No task batches in the landing zone." in out.stdout and str(val_env.landing_dir) in out.stdout
