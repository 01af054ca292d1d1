"""`make validate-data` and the `data_validation` DAG give the same verdict on every input of the test corpus.

The corpus (issue 12's done-when) is every bad-file kind of ``test_validation_bad_inputs`` (14), the three
image corruptions of ``test_image_stats`` (noise, half intensity, rolled 3 columns), the plain file and the five
format variants that must pass (BOM, CRLF, quoted numbers, trailing blank line, all four) and a symlinked entry:
24 inputs. They go through in rounds of up to 5 files (``task_0.csv`` .. ``task_4.csv``, each built from that
task's own rows), each round landed twice into two fresh states: one judged by `make validate-data` (a
subprocess, verbatim), one by ``data_validation`` (``dag.test()``, at the same time). Per file the status and the
named checks must agree with each other AND with the expected verdict, the quarantined bytes are the landed
bytes, and both stores hold the same files. A crafted manifest (a class in two tasks) is refused by both as a
whole, with nothing judged.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from tests.dag_helpers import load_dag, state_name
from tests.ops.validation.test_image_stats import CORRUPTIONS
from tests.ops.validation.test_one_reader import VARIANTS
from tests.ops.validation.test_validation_bad_inputs import CASES
from tests.paths import ROOT

Build = Callable[[str], bytes | None]  # a task's CSV text -> the landed bytes (None: a symlink entry)


def _bytes(data: str | bytes) -> bytes:
    return data.encode() if isinstance(data, str) else data


def _corrupt(change: Callable[[np.ndarray], np.ndarray]) -> Build:
    """The task's rows with their pixels changed by ``change`` (labels and splits kept)."""

    def build(text: str) -> bytes:
        lines = text.splitlines()
        rows = [line.split(",") for line in lines[1:]]
        pixels = change(np.array([[int(v) for v in r[:64]] for r in rows], dtype=np.int64))
        body = [",".join([*map(str, p), *r[64:]]) for p, r in zip(pixels, rows, strict=True)]
        return ("\n".join([lines[0], *body]) + "\n").encode()

    return build


def _corpus() -> list[tuple[str, Build, tuple[str, str | None]]]:
    """(name, builder, expected (status, check)); ordered so task-specific cases sit on a task they fit."""
    bad = {name: (lambda t, b=build: _bytes(b(t)), check) for name, (build, check, _stage) in CASES.items()}
    # single_class keeps label 0 rows (task_0's class); label_outside_task writes 5 (outside task_1's {2, 3})
    first = ["single_class", "label_outside_task"]
    corpus = [(n, bad[n][0], ("rejected", bad[n][1])) for n in first]
    corpus += [(n, b, ("rejected", c)) for n, (b, c) in sorted(bad.items()) if n not in first]
    corpus += [(n, _corrupt(c), ("rejected", "image_distribution")) for n, c in sorted(CORRUPTIONS.items())]
    corpus.append(("plain file", lambda t: t.encode(), ("validated", None)))
    corpus += [(f"variant {n}", v, ("validated", None)) for n, v in sorted(VARIANTS.items())]
    corpus.append(("symlink entry", lambda t: None, ("rejected", "precheck.file_type")))
    assert (
        len(corpus) == len(CASES) + len(CORRUPTIONS) + len(VARIANTS) + 2
        and [c[0] for c in corpus[:2]] == first
    )
    return corpus


def _land_round(var: Path, split_digits: Path, cases: list[tuple[str, Build, tuple]]) -> dict[str, bytes]:
    """Write one round into ``var``'s landing zone (file k from task k); return the landed bytes by name."""
    landing = var / "landing"
    landing.mkdir(parents=True)
    shutil.copy(split_digits, landing / "manifest.json")
    landed = {}
    for k, (_name, build, _expected) in enumerate(cases):
        name = f"task_{k}.csv"
        data = build((split_digits.parent / name).read_text())
        if data is None:
            outside = var / "outside.csv"
            outside.write_bytes((split_digits.parent / name).read_bytes())
            (landing / name).symlink_to(outside)
        else:
            (landing / name).write_bytes(data)
            landed[name] = data
    return landed


def _verdicts(var: Path) -> dict[str, tuple[str, tuple[str, ...]]]:
    """Per landed name: ('validated', ()) from the store's index, ('rejected', failed checks) from the quarantine."""
    out: dict[str, tuple[str, tuple[str, ...]]] = {}
    index = var / "validated" / "index.json"
    if index.exists():
        out.update({name: ("validated", ()) for name in json.loads(index.read_text())["files"]})
    quarantine = var / "quarantine" / "index.json"
    if quarantine.exists():
        for entry in json.loads(quarantine.read_text())["entries"]:
            report = json.loads((var / "quarantine" / entry["folder"] / "report.json").read_text())
            assert report["check"] == entry["check"] == report["failed_checks"][0]
            out[entry["original_name"]] = ("rejected", tuple(report["failed_checks"]))
    return out


def _quarantined_bytes(var: Path) -> dict[str, bytes]:
    quarantine = var / "quarantine" / "index.json"
    if not quarantine.exists():
        return {}
    entries = json.loads(quarantine.read_text())["entries"]
    return {
        e["original_name"]: Path(e["file"]).read_bytes() for e in entries if not Path(e["file"]).is_symlink()
    }


def _validate_both(cli_var: Path, dag_var: Path, monkeypatch: pytest.MonkeyPatch):
    """`make validate-data` on ``cli_var`` (a subprocess) while ``data_validation`` runs on ``dag_var``
    in-process (the two use both cores); returns (the make process, the DAG run's state)."""
    env = {**os.environ, "CT_VAR_DIR": str(cli_var)}
    cli = subprocess.Popen(
        ["make", "-s", "validate-data"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        monkeypatch.setenv("CT_VAR_DIR", str(dag_var))
        dag_state = state_name(load_dag("data_validation").test().state)
        stdout, stderr = cli.communicate(timeout=900)
    finally:
        if cli.poll() is None:
            cli.kill()
    return subprocess.CompletedProcess(cli.args, cli.returncode, stdout, stderr), dag_state


def _recipe_exit(done: subprocess.CompletedProcess) -> int:
    """The exit code of make's recipe (the validation CLI): make itself exits 2 on any failed recipe."""
    if done.returncode == 0:
        return 0
    marker = "validate-data] Error "
    assert done.returncode == 2 and marker in done.stderr, done.stderr
    return int(done.stderr.split(marker)[1].split()[0])


@pytest.mark.integration
def test_cli_and_dag_give_the_same_verdict_on_the_corpus(
    val_env, airflow_db, split_digits, tmp_path, monkeypatch
):
    corpus = _corpus()
    for start in range(0, len(corpus), 5):
        cases = corpus[start : start + 5]
        cli_var, dag_var = tmp_path / f"round{start // 5}" / "cli", tmp_path / f"round{start // 5}" / "dag"
        landed = _land_round(cli_var, split_digits, cases)
        assert _land_round(dag_var, split_digits, cases) == landed

        cli, dag_state = _validate_both(cli_var, dag_var, monkeypatch)

        expected = {f"task_{k}.csv": verdict for k, (_n, _b, verdict) in enumerate(cases)}
        names = {f"task_{k}.csv": name for k, (name, _b, _v) in enumerate(cases)}
        cli_verdicts, dag_verdicts = _verdicts(cli_var), _verdicts(dag_var)
        assert set(cli_verdicts) == set(dag_verdicts) == set(expected)
        for file, (status, check) in expected.items():
            where = f"{names[file]} as {file}"
            assert cli_verdicts[file] == dag_verdicts[file], f"{where}: CLI and DAG disagree"
            assert cli_verdicts[file][0] == status, f"{where}: {cli_verdicts[file]}"
            assert check is None or check in cli_verdicts[file][1], f"{where}: {check} not named"
        any_rejected = any(v[0] == "rejected" for v in expected.values())
        assert _recipe_exit(cli) == (1 if any_rejected else 0), cli.stdout + cli.stderr
        assert dag_state == ("failed" if any_rejected else "success")
        # original bytes kept in quarantine by both; the stores hold the same validated files, byte for byte
        rejected = {f for f, v in expected.items() if v[0] == "rejected" and f in landed}
        for var in (cli_var, dag_var):
            assert _quarantined_bytes(var) == {f: landed[f] for f in rejected}
        assert {p.name: p.read_bytes() for p in (cli_var / "validated").glob("task_*.csv")} == {
            p.name: p.read_bytes() for p in (dag_var / "validated").glob("task_*.csv")
        }


@pytest.mark.integration
def test_a_crafted_manifest_is_refused_by_both_with_nothing_judged(
    val_env, airflow_db, split_digits, tmp_path, monkeypatch
):
    manifest = json.loads(split_digits.read_text())
    manifest["tasks"][1]["classes"] = [1, 2]  # class 1 in two tasks
    for var in (tmp_path / "cli", tmp_path / "dag"):
        (var / "landing").mkdir(parents=True)
        (var / "landing" / "manifest.json").write_text(json.dumps(manifest))
        shutil.copy(split_digits.parent / "task_0.csv", var / "landing" / "task_0.csv")

    cli, dag_state = _validate_both(tmp_path / "cli", tmp_path / "dag", monkeypatch)

    assert (
        _recipe_exit(cli) == 2 and "tasks[1] (task_1) classes [1] already belong to task_0" in cli.stderr
    ), cli.stdout + cli.stderr
    assert dag_state == "failed"
    for var in (tmp_path / "cli", tmp_path / "dag"):
        assert _verdicts(var) == {}, "a refused manifest judges no batch"
        assert (var / "landing" / "task_0.csv").read_bytes() == (
            split_digits.parent / "task_0.csv"
        ).read_bytes()
