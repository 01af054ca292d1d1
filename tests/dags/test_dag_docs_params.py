"""Every DAG documents itself and its params well enough to be run from the trigger form.

Contract for ``doc_md`` (the format every DAG file here uses)::

    ### <dag_id>
    <what it does: at least one sentence>
    **Params**: `name` ... (every param named in backticks)
    **When it fails** ... (symptoms and what to do)

A section label is a Markdown heading or a bold label at the start of a line. Every ``Param`` declares a
JSON-schema ``type`` and a ``description``; closed vocabularies are ``enum`` s that match the code; defaults
of scheduled DAGs validate against their own schema (a scheduled run uses them unattended).

The trigger form shows a Param's ``description`` next to its field, while a refused value only gets a
"Bad Request" toast; so every rule of a Param is written in its description (:func:`rule_phrases`): a range
as ``1..500`` (or ``>= 8``, ``> 0``, ``<= 744``), a pattern verbatim, every value of an enum.
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
    # a nullable Param lists None ("empty") in its enum beside the code's choices
    if closed is not None and set(schema.get("enum") or []) - {None} != closed:
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


def _num(value: float) -> str:
    return f"{value:g}"


def rule_phrases(schema: dict[str, Any]) -> list[list[str]]:
    """What a description must say for each rule of ``schema``: one list of alternatives per rule."""
    rules: list[list[str]] = []
    low, high = schema.get("minimum"), schema.get("maximum")
    if low is not None and high is not None:
        rules.append([f"{_num(low)}..{_num(high)}"])
    elif low is not None:
        rules.append([f">= {_num(low)}", f"at least {_num(low)}"])
    elif high is not None:
        rules.append([f"<= {_num(high)}", f"at most {_num(high)}"])
    if schema.get("exclusiveMinimum") is not None:
        rules.append([f"> {_num(schema['exclusiveMinimum'])}"])
    if schema.get("exclusiveMaximum") is not None:
        rules.append([f"< {_num(schema['exclusiveMaximum'])}"])
    for pattern in (schema.get("pattern"), (schema.get("items") or {}).get("pattern")):
        if pattern:
            rules.append([pattern])
    rules += [[str(value)] for value in schema.get("enum") or [] if value is not None]
    return rules


def rule_problems(name: str, param: Any) -> list[str]:
    """Rules of a Param (range, pattern, enum values) that its description does not state."""
    description = param.description or ""

    def states(
        phrase: str,
    ) -> bool:  # as a whole phrase: "> 0" is not found in "> 0.5", "off" not in "offset"
        return re.search(rf"(?<![\w-]){re.escape(phrase)}(?![\w-]|\.\d)", description) is not None

    return [
        f"{name}: the description does not state the rule {' / '.join(alternatives)!r}"
        for alternatives in rule_phrases(param.schema)
        if not any(states(a) for a in alternatives)
    ]


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_every_param_rule_is_in_its_description(path: Path, dag_bag: Callable[[Path], Any]) -> None:
    bag = dag_bag(path)
    assert not bag.import_errors, bag.import_errors
    problems = {
        dag_id: found
        for dag_id, dag in bag.dags.items()
        if (found := [p for name in dag.params for p in rule_problems(name, dag.params.get_param(name))])
    }
    assert not problems, problems


def test_rule_check_catches_a_missing_rule() -> None:
    from airflow.sdk import Param

    ok = Param(None, type=["null", "integer"], minimum=1, maximum=500, description="Epochs: 1..500.")
    assert rule_problems("epochs", ok) == []
    assert rule_problems("epochs", Param(3, type="integer", minimum=1, maximum=500, description="x")) == [
        "epochs: the description does not state the rule '1..500'"
    ]
    assert rule_problems(
        "n", Param(1.0, type="number", exclusiveMinimum=0, maximum=24, description="<= 24")
    ) == ["n: the description does not state the rule '> 0'"]
    pattern = r"^[a-z]{1,8}$"
    assert rule_problems("id", Param("a", type="string", pattern=pattern, description="lowercase")) == [
        f"id: the description does not state the rule {pattern!r}"
    ]
    listed = Param([], type="array", items={"type": "string", "pattern": pattern}, description=pattern)
    assert rule_problems("files", listed) == []
    assert rule_problems("s", Param("a", type="string", enum=["a", "b"], description="a or c")) == [
        "s: the description does not state the rule 'b'"
    ]
    assert rule_problems("r", Param(1, type="number", exclusiveMinimum=0, description="> 0.5")) == [
        "r: the description does not state the rule '> 0'"
    ]


def test_readme_keeps_the_note_on_unpausing() -> None:
    from tests.paths import ROOT

    readme = (ROOT / "README.md").read_text()
    assert "trigger form unpauses a paused DAG" in readme


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
        "strategy: enum None must equal the code's choices ['analytic', 'ewc', 'lwf', 'naive', 'replay']"
    ]
    assert param_problems("flag", Param(True, type="string", description="x"), False) == [
        "flag: a boolean default needs type 'boolean' (the form shows a switch)"
    ]
    bad_default = param_problems("n", Param(0, type="integer", minimum=1, description="x"), True)
    assert len(bad_default) == 1 and "scheduled runs fail" in bad_default[0]
    assert param_problems("n", Param(0, type="integer", minimum=1, description="x"), False) == []
