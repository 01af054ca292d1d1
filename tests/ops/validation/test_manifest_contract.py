"""The landing manifest is a trust boundary (issue 12, defects 1 and 4): one schema checked at landing and in
the precheck stage, a store manifest written from validated entries only, training confined to the store,
and a stream's class capacity fixed by configuration and the learner state, never by a manifest."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.ops.validation.helpers import land, store_snapshot, task_text


def _mutated(split_digits: Path, change) -> dict:
    raw = json.loads(split_digits.read_text())
    change(raw)
    return raw


def _set(path: str, value):
    def change(raw: dict) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[int(key)] if key.isdigit() else node[key]
        node[int(last) if last.isdigit() else last] = value

    return change


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (_set("tasks.1.file", "/etc/task_1.csv"), "tasks[1].file"),
        (_set("tasks.1.file", "../task_1.csv"), "tasks[1].file"),
        (_set("tasks.1.file", "sub/task_1.csv"), "tasks[1].file"),
        (_set("tasks.1.file", "task_1.json"), "tasks[1].file"),
        (_set("tasks.1.task_id", "task/1"), "tasks[1].task_id"),
        (_set("tasks.1.task_id", "x" * 65), "tasks[1].task_id"),
        (_set("tasks.1.classes", [2, "3"]), "tasks[1].classes[1]"),
        (_set("tasks.1.classes", [2, 3.0]), "tasks[1].classes[1]"),
        (_set("tasks.1.classes", [True, 3]), "tasks[1].classes[0]"),
        (_set("tasks.1.classes", [2, -3]), "tasks[1].classes[1]"),
        (_set("tasks.1.classes", []), "tasks[1].classes"),
        (_set("tasks.1.classes", [2, 10]), "tasks[1] (task_1) classes [10] are outside [0, num_classes=10)"),
        (_set("tasks.1.task_id", "task_0"), "task_id ['task_0'] appear(s) in more than one task"),
        (_set("tasks.1.file", "task_0.csv"), "file ['task_0.csv'] appear(s) in more than one task"),
        (_set("tasks.1.classes", [1, 2]), "tasks[1] (task_1) classes [1] already belong to task_0"),
        (_set("tasks.1.data_roots", ["/"]), "tasks[1].data_roots"),
        (_set("data_roots", ["/"]), "data_roots: Extra inputs are not permitted"),
        (_set("num_classes", "10"), "num_classes"),
        (_set("tasks", []), "tasks"),
    ],
)
def test_schema_refuses_each_bad_manifest_naming_where(split_digits, change, where):
    from include.ops.validation.manifest_schema import ManifestRefused, parse_manifest

    with pytest.raises(ManifestRefused, match="landing manifest m.json refused") as info:
        parse_manifest(_mutated(split_digits, change), "m.json", class_capacity=10)
    assert where in str(info.value)


def test_schema_accepts_split_digits_and_shares_the_dag_task_id_pattern(split_digits):
    from include.ops.validation.manifest_schema import load_landing_manifest
    from model.config import TASK_ID_PATTERN
    from model.data import load_manifest
    from tests.paths import ROOT

    assert load_landing_manifest(split_digits, class_capacity=10) == load_manifest(split_digits)
    dag = (ROOT / "dags" / "continual_training.py").read_text()
    assert "pattern=TASK_ID_PATTERN" in dag and f'pattern=r"{TASK_ID_PATTERN}"' not in dag, "one definition"


def test_a_bad_landing_manifest_fails_the_run_naming_it_and_judges_no_batch(val_env, split_digits, capsys):
    """Old code copied this manifest into the store with the passing task_0, and training then read the
    absolute path: a CSV that never passed the gate."""
    from include.ops.validation.cli import main
    from include.ops.validation.outcome import ValidationSetupError
    from include.ops.validation.pipeline import validate_landed_file
    from include.ops.validation.zone import validate_landing_zone

    settings = val_env
    never_validated = settings.var_dir / "elsewhere" / "task_1.csv"
    never_validated.parent.mkdir(parents=True)
    never_validated.write_text(task_text(split_digits, 1))
    manifest = settings.landing_dir / "manifest.json"
    manifest.write_text(json.dumps(_mutated(split_digits, _set("tasks.1.file", str(never_validated)))))
    landed = land(settings, "task_0.csv", task_text(split_digits, 0))

    with pytest.raises(ValidationSetupError, match=rf"landing manifest {manifest} refused: tasks\[1\].file"):
        validate_landing_zone()
    with pytest.raises(ValidationSetupError, match=r"tasks\[1\].file"):  # the precheck stage's own check
        validate_landed_file(landed, manifest_path=manifest)
    assert main(["validate", "--no-data-docs"]) == 2
    err = capsys.readouterr().err
    assert "data validation could not run: landing manifest" in err and "tasks[1].file" in err
    assert "Traceback" not in err
    assert landed.read_text() == task_text(split_digits, 0), "the batch keeps its bytes where it landed"
    assert store_snapshot(settings.validated_dir) == {} and store_snapshot(settings.quarantine_dir) == {}


def test_store_manifest_is_written_from_validated_entries_only(tmp_path, split_digits):
    from include.ops.validation.store import publish_validated
    from model.data import load_manifest
    from model.fsio import sha256_file

    store = tmp_path / "validated"

    def publish(k: int) -> None:
        src = split_digits.parent / f"task_{k}.csv"
        entry = {"task_id": f"task_{k}", "rows": 1}
        publish_validated(src, src.name, sha256_file(src), split_digits, store, entry)

    publish(0)
    written = load_manifest(store / "manifest.json")
    assert [t.task_id for t in written.tasks] == ["task_0"], (
        "pending tasks never appear in the store manifest"
    )
    assert (store / "manifest.json").read_bytes() != split_digits.read_bytes(), "never a copy"
    publish(2)  # out of order: listed in the landing manifest's order, task_1 still pending
    assert [t.file for t in load_manifest(store / "manifest.json").tasks] == ["task_0.csv", "task_2.csv"]
    for k in (1, 3, 4):
        publish(k)
    assert (store / "manifest.json").read_bytes() == split_digits.read_bytes(), "every task validated"


def test_one_landed_batch_puts_only_its_task_in_the_store_manifest(val_env, split_digits):
    from include.ops.task_manifest import resolve_task_manifest
    from include.ops.validation.zone import validate_landing_zone
    from model.data import load_manifest

    settings = val_env
    land(settings, "task_0.csv", task_text(split_digits, 0))
    assert [r.status for r in validate_landing_zone()] == ["validated"]
    resolved = resolve_task_manifest(settings, learned=set())
    assert resolved == settings.validated_dir / "manifest.json"
    assert [(t.task_id, t.file) for t in load_manifest(resolved).tasks] == [("task_0", "task_0.csv")]
    state = json.loads((settings.state_dir / "learner_state.json").read_text())
    assert state["capacity"] == {"num_classes": 10, "param_budget": 100_000}, (
        "recorded with the first manifest"
    )


@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_training_resolves_task_files_only_inside_the_store(ct_env, split_digits, how):
    """A store manifest as an old version wrote it (a copy of the landing one) is refused naming the file."""
    from include.ops.settings import get_settings
    from include.ops.task_manifest import resolve_task_manifest

    settings = get_settings()
    outside = settings.landing_dir / "task_1.csv"
    outside.parent.mkdir(parents=True)
    outside.write_text(task_text(split_digits, 1))
    file = {"absolute": str(outside), "dotdot": "../landing/task_1.csv", "symlink": "task_1.csv"}[how]
    settings.validated_dir.mkdir(parents=True)
    if how == "symlink":
        (settings.validated_dir / "task_1.csv").symlink_to(outside)
    raw = _mutated(split_digits, _set("tasks.1.file", file))
    (settings.validated_dir / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(ValueError, match=r"task 'task_1' of .*manifest.json: task file .* outside .*refused"):
        resolve_task_manifest(settings, learned=set())


def test_the_raw_fallback_is_confined_to_the_data_dir(ct_env, split_digits):
    from include.ops.settings import get_settings
    from include.ops.task_manifest import resolve_task_manifest
    from model.data import load_manifest

    settings = get_settings()
    settings.data_dir.mkdir(parents=True)
    settings.validated_dir.mkdir(parents=True)
    (settings.data_dir / "task_0.csv").write_text(task_text(split_digits, 0))
    stored = _mutated(split_digits, lambda raw: raw.update(tasks=raw["tasks"][:1]))
    (settings.validated_dir / "manifest.json").write_text(json.dumps(stored))
    effective = load_manifest(resolve_task_manifest(settings, learned={"task_0"}))
    assert effective.tasks[0].file == str(settings.data_dir / "task_0.csv"), "learned before validation"
    assert effective.data_roots == [str(settings.validated_dir), str(settings.data_dir)]
    (settings.data_dir / "task_0.csv").unlink()
    (settings.data_dir / "task_0.csv").symlink_to(split_digits.parent / "task_0.csv")  # outside data_dir
    with pytest.raises(ValueError, match=r"task 'task_0' .*outside .*refused"):
        resolve_task_manifest(settings, learned={"task_0"})


def test_tasks_learned_before_validation_stay_in_the_manifest_training_reads(ct_env, split_digits):
    """Learned from the raw stream, then validation switched on: the store lists only task_2, and training of
    task_2 must still evaluate task_0 and task_1 (it failed with KeyError 'task_0' in the asset hand-off)."""
    from include.ops.settings import get_settings
    from include.ops.task_manifest import resolve_task_manifest
    from model.data import load_manifest, write_split_digits

    settings = get_settings()
    write_split_digits(settings.data_dir)  # the raw stream, source_manifest
    settings.validated_dir.mkdir(parents=True)
    (settings.validated_dir / "task_2.csv").write_text(task_text(split_digits, 2))
    stored = _mutated(split_digits, lambda raw: raw.update(tasks=raw["tasks"][2:3]))
    (settings.validated_dir / "manifest.json").write_text(json.dumps(stored))
    effective = load_manifest(resolve_task_manifest(settings, learned={"task_0", "task_1"}))
    assert [t.task_id for t in effective.tasks] == ["task_0", "task_1", "task_2"], "stream order"
    assert [Path(t.file).parent for t in effective.tasks] == [
        settings.data_dir.resolve(),
        settings.data_dir.resolve(),
        settings.validated_dir.resolve(),
    ]
    assert load_manifest(resolve_task_manifest(settings, learned=set())).tasks[0].task_id == "task_2"


def test_a_manifest_over_capacity_is_refused_at_landing_and_valid_tasks_go_on(
    val_env, split_digits, monkeypatch
):
    """Old code accepted task_5's classes 10 and 11, replaced the store's manifest with it, and then every task
    was refused at training time (12 classes for a 10-class head), valid ones too."""
    from include.ops.settings import get_settings
    from include.ops.validation.landing import LocalLanding
    from include.ops.validation.outcome import ValidationSetupError
    from include.ops.validation.store import publish_validated
    from include.ops.validation.zone import landing_manifest
    from model.fsio import sha256_file
    from model.learner import ContinualLearner

    settings = val_env
    zone = LocalLanding(settings.landing_dir)
    manifest = landing_manifest(zone, settings)  # the stream's first manifest: capacity 10 is recorded
    src = split_digits.parent / "task_0.csv"
    publish_validated(
        src, src.name, sha256_file(src), manifest, settings.validated_dir, {"task_id": "task_0"}
    )
    before = store_snapshot(settings.validated_dir)

    def grow(raw: dict) -> None:
        raw["num_classes"] = 12
        raw["tasks"].append({"task_id": "task_5", "classes": [10, 11], "file": "task_5.csv"})

    manifest.write_text(json.dumps(_mutated(split_digits, grow)))
    for env in ("10", "12"):  # the recorded capacity wins over a later CT_CLASS_CAPACITY
        monkeypatch.setenv("CT_CLASS_CAPACITY", env)
        with pytest.raises(
            ValidationSetupError, match=r"over the class capacity 10 .*num_classes 12.*\[10, 11\]"
        ):
            landing_manifest(zone, get_settings())
    assert store_snapshot(settings.validated_dir) == before, "the store's manifest is not replaced"

    from include.ops.task_manifest import resolve_task_manifest, stream_capacity

    resolved = resolve_task_manifest(settings, learned=set())
    learner = ContinualLearner(resolved, settings.state_dir, capacity=stream_capacity(settings))
    assert learner.model_cfg.num_classes == 10 and learner.next_task() == "task_0", "valid tasks go on"
    assert len(learner.task_data("task_0").y_train) > 0


def test_a_fresh_stream_takes_its_capacity_from_configuration(val_env, split_digits, monkeypatch):
    """A fresh 100-class manifest: refused at the default capacity; accepted when configured, and then the
    model's parameter budget refuses to build it (old code silently built a 171k-parameter model)."""
    from include.ops.settings import get_settings
    from include.ops.validation.landing import LocalLanding
    from include.ops.validation.outcome import ValidationSetupError
    from include.ops.validation.zone import landing_manifest
    from model.learner import ContinualLearner

    manifest = val_env.landing_dir / "manifest.json"
    manifest.write_text(json.dumps(_mutated(split_digits, _set("num_classes", 100))))
    with pytest.raises(ValidationSetupError, match="over the class capacity 10"):
        landing_manifest(LocalLanding(val_env.landing_dir), val_env)
    assert not (val_env.state_dir / "learner_state.json").exists(), "a refused manifest records nothing"
    from include.ops.task_manifest import stream_capacity

    monkeypatch.setenv("CT_CLASS_CAPACITY", "100")
    settings = get_settings()
    landing_manifest(LocalLanding(settings.landing_dir), settings)
    assert stream_capacity(settings).num_classes == 100
    with pytest.raises(ValueError, match="170916 parameters, over the parameter budget of 100000"):
        ContinualLearner(manifest, settings.state_dir, capacity=stream_capacity(settings))
