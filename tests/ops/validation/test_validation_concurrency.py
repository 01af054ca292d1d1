"""Concurrent validations are safe: threads and processes validate at once, each file is stored exactly once,
data docs of every run land in their own folder, and the committed GX project is unchanged byte for byte."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.ops.validation.helpers import land, task_text
from tests.paths import ROOT

GX_PROJECT = ROOT / "great_expectations"


def _tree_digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under ``folder`` (the whole GX project, uncommitted/ included)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_parallel_threads_with_data_docs(val_env, split_digits, monkeypatch):
    from include.ops.validation.pipeline import validate_landed_file

    settings = val_env
    monkeypatch.setenv("CT_GX_DATA_DOCS", "1")
    before = _tree_digest(GX_PROJECT)
    paths = [land(settings, f"task_{k}.csv", task_text(split_digits, k)) for k in range(3)]
    manifest = settings.landing_dir / "manifest.json"

    with ThreadPoolExecutor(max_workers=3) as pool:
        results = list(pool.map(lambda p: validate_landed_file(p, manifest_path=manifest), paths))

    assert [r.status for r in results] == ["validated"] * 3, [r.reason for r in results]
    index = json.loads((settings.validated_dir / "index.json").read_text())
    assert sorted(index["files"]) == [f"task_{k}.csv" for k in range(3)]
    sites = {Path(r.data_docs).parent for r in results}
    assert len(sites) == 3
    for site in sites:
        assert site.parent == settings.var_dir / "data_docs"
        assert (site / "index.html").is_file() and (site / "static" / "styles").is_dir()
        assert list((site / "validations").rglob("*.html")), "the validation result page is published"
    assert not list((settings.var_dir / "data_docs").glob(".*.tmp")), "no half-built site left behind"
    assert _tree_digest(GX_PROJECT) == before


def _validate_zone(queue) -> None:
    """Child process body: validate the whole landing zone, report (name, status) pairs."""
    from include.ops.validation.zone import validate_landing_zone

    try:
        queue.put([(r.name, r.status, r.reason) for r in validate_landing_zone()])
    except BaseException as exc:  # the parent asserts on it
        queue.put(repr(exc))


def test_two_processes_on_one_landing_zone(val_env, split_digits):
    """Two forked processes (modules already imported, so cheap) race over the same two landed files."""
    import multiprocessing

    from include.ops.validation.zone import validate_landing_zone

    settings = val_env
    before = _tree_digest(GX_PROJECT)
    for k in range(2):
        land(settings, f"task_{k}.csv", task_text(split_digits, k))
    assert validate_landing_zone.__module__  # imported in the parent: children inherit it via fork
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_validate_zone, args=(queue,)) for _ in range(2)]
    for proc in procs:
        proc.start()
    outcomes = [queue.get(timeout=300) for _ in procs]
    for proc in procs:
        proc.join(timeout=60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert all(isinstance(o, list) for o in outcomes), outcomes

    records = [r for outcome in outcomes for r in outcome]
    validated = sorted(name for name, status, _ in records if status == "validated")
    assert validated == ["task_0.csv", "task_1.csv"], records  # each exactly once
    assert all(status in ("validated", "skipped") for _, status, _ in records), records
    index = json.loads((settings.validated_dir / "index.json").read_text())
    assert sorted(index["files"]) == validated
    assert not settings.quarantine_dir.exists() or not any(settings.quarantine_dir.iterdir())
    assert _tree_digest(GX_PROJECT) == before
