"""Every DAG documents itself and its params well enough to be run from the trigger form.

Contract for ``doc_md`` (the format every DAG file here uses)::

    ### <dag_id>
    <what it does: at least one sentence>
    **Params**: `name` ... (every param named in backticks)
    **When it fails** ... (symptoms and what to do)

A section label is a Markdown heading or a bold label at the start of a line. Every ``Param`` declares a
JSON-schema ``type`` and a ``description``; closed vocabularies are ``enum`` s that match the code; defaults
of scheduled DAGs validate against their own schema (a scheduled run uses them unattended).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.dag_helpers import DAG_FILES

LABEL = re.compile(r"^(?:#{1,6}\s+(?P<h>[^\n]+)|\*\*(?P<b>[^*\n]+)\*\*)", re.M)
MIN_INTRO_CHARS = 60


def _closed_vocabularies() -> dict[str, set[str]]:
    """Param names whose values are a closed set defined in code; the DAG's enum must equal the code's."""
    from model.config import SCENARIOS
    from model.strategies import STRATEGIES

    return {"strategy": set(STRATEGIES), "scenario": set(SCENARIOS)}


def sections(doc: str) -> list[tuple[str, int]]:
    """(label, offset) of every heading / line-leading bold label in ``doc``."""
    return [((m.group("h") or m.group("b")).strip(), m.start()) for m in LABEL.finditer(doc)]


def doc_problems(dag_id: str, doc: str | None, param_names: list[str]) -> list[str]:
    """What the doc_md of ``dag_id`` lacks under the contract above; empty when it complies."""
    if not doc or not doc.strip():
        return ["no doc_md"]
    problems = []
    found = sections(doc)
    if not found or dag_id not in found[0][0] or doc[: found[0][1]].strip():
        problems.append(f"doc_md must start with a heading naming the DAG ({dag_id!r})")
    labels = [label.lower().rstrip(":") for label, _ in found]
    title_end = doc.find("\n", found[0][1]) if found else 0
    next_label = next((off for _, off in found[1:]), len(doc))
    intro = doc[title_end:next_label].strip() if found else ""
    if len(intro) < MIN_INTRO_CHARS and not any(lb.startswith("what") for lb in labels):
        problems.append("no 'what it does': an intro paragraph under the title or a 'What ...' section")
    if not any(re.match(r"param(eter)?s\b", lb) for lb in labels):
        problems.append("no **Params** section")
    if not any(lb.startswith("when it fails") for lb in labels):
        problems.append("no **When it fails** section")
    for name in param_names:
        if f"`{name}`" not in doc:
            problems.append(f"param {name!r} is not named (in backticks) in doc_md")
    return problems


def param_problems(name: str, param: Any, scheduled: bool) -> list[str]:
    """What a Param lacks: type, description, enum for closed sets, a valid default on scheduled DAGs."""
    from airflow.sdk.definitions.param import ParamValidationError

    schema = param.schema
    problems = []
    if "type" not in schema:
        problems.append(f"{name}: no JSON-schema 'type'")
    if not (param.description or "").strip():
        problems.append(f"{name}: no description")
    closed = _closed_vocabularies().get(name)
    if closed is not None and set(schema.get("enum") or []) != closed:
        problems.append(f"{name}: enum {schema.get('enum')} must equal the code's choices {sorted(closed)}")
    if isinstance(param.value, bool) and schema.get("type") != "boolean":
        problems.append(f"{name}: a boolean default needs type 'boolean' (the form shows a switch)")
    if "enum" in schema and param.value is not None and param.value not in schema["enum"]:
        problems.append(f"{name}: default {param.value!r} is not in its enum")
    if scheduled:
        try:
            param.resolve(suppress_exception=False)
        except ParamValidationError as exc:
            problems.append(f"{name}: the default does not validate, so scheduled runs fail: {exc}")
    return problems


def test_dag_folder_is_not_empty() -> None:
    assert DAG_FILES, "no DAG files in dags/"


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_doc_md_has_the_sections(path: Path, dag_bag: Callable[[Path], Any]) -> None:
    bag = dag_bag(path)
    assert not bag.import_errors, bag.import_errors
    assert bag.dags, f"{path.name} defines no DAG"
    problems = {
        dag_id: p
        for dag_id, dag in bag.dags.items()
        if (p := doc_problems(dag_id, dag.doc_md, list(dag.params)))
    }
    assert not problems, problems


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_every_param_is_typed_described_and_closed_where_closed(
    path: Path, dag_bag: Callable[[Path], Any]
) -> None:
    bag = dag_bag(path)
    assert not bag.import_errors, bag.import_errors
    problems = {}
    for dag_id, dag in bag.dags.items():
        scheduled = type(dag.timetable).__name__ != "NullTimetable"  # time or asset schedules run unattended
        found = [
            p for name in dag.params for p in param_problems(name, dag.params.get_param(name), scheduled)
        ]
        if found:
            problems[dag_id] = found
    assert not problems, problems


# The checks themselves, on docs and params that break each rule (so a green run means something).

GOOD_DOC = """### demo
Does a thing, end to end, and writes the result where the next DAG reads it from.

**Params**: `size` - how many.

**When it fails**: read the log, fix the input, re-run.
"""


@pytest.mark.parametrize(
    ("doc", "expected"),
    [
        (GOOD_DOC, []),
        (None, ["no doc_md"]),
        (
            GOOD_DOC.replace("### demo", "### other"),
            ["doc_md must start with a heading naming the DAG ('demo')"],
        ),
        (
            GOOD_DOC.replace(
                "Does a thing, end to end, and writes the result where the next DAG reads it from.", "x"
            ),
            ["no 'what it does': an intro paragraph under the title or a 'What ...' section"],
        ),
        (GOOD_DOC.replace("**Params**", "Params"), ["no **Params** section"]),
        (GOOD_DOC.replace("**When it fails**", "Failures"), ["no **When it fails** section"]),
        (GOOD_DOC.replace("`size`", "size"), ["param 'size' is not named (in backticks) in doc_md"]),
    ],
    ids=["good", "missing", "title", "intro", "params", "fails", "param-named"],
)
def test_doc_rules_catch_each_gap(doc: str | None, expected: list[str]) -> None:
    assert doc_problems("demo", doc, ["size"]) == expected


def test_param_rules_catch_each_gap() -> None:
    from airflow.sdk import Param

    assert param_problems("n", Param(3, type="integer", minimum=1, description="How many."), True) == []
    assert param_problems("n", Param(3, description="How many."), True) == ["n: no JSON-schema 'type'"]
    assert param_problems("n", Param(3, type="integer"), True) == ["n: no description"]
    assert param_problems("strategy", Param("replay", type="string", description="x"), False) == [
        "strategy: enum None must equal the code's choices ['ewc', 'lwf', 'naive', 'replay']"
    ]
    assert param_problems("flag", Param(True, type="string", description="x"), False) == [
        "flag: a boolean default needs type 'boolean' (the form shows a switch)"
    ]
    bad_default = param_problems("n", Param(0, type="integer", minimum=1, description="x"), True)
    assert len(bad_default) == 1 and "scheduled runs fail" in bad_default[0]
    assert param_problems("n", Param(0, type="integer", minimum=1, description="x"), False) == []
