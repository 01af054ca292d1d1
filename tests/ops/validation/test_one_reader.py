"""One task-file reader (issue 12, defect 2): the bytes that pass validation are the bytes training reads, the
same way. A UTF-8 BOM, CRLF line ends, quoted numbers and a trailing blank line each pass validation AND train;
bad files are refused by both."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from tests.ops.validation.helpers import land, task_text
from tests.ops.validation.test_validation_bad_inputs import CASES


def _quoted(text: str) -> str:
    """Every field of every row quoted, header included (RFC 4180)."""
    return "".join(",".join(f'"{c}"' for c in line.split(",")) + "\n" for line in text.splitlines())


VARIANTS = {
    "utf8_bom": lambda t: b"\xef\xbb\xbf" + t.encode(),
    "crlf": lambda t: t.replace("\n", "\r\n").encode(),
    "quoted_numbers": lambda t: _quoted(t).encode(),
    "trailing_blank_line": lambda t: (t + "\n").encode(),
    "all_four": lambda t: b"\xef\xbb\xbf" + (_quoted(t) + "\n").replace("\n", "\r\n").encode(),
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_variant_validates_and_trains_like_the_plain_file(variant, val_env, split_digits, tmp_path):
    """Validation passes the file; the reader gives the plain file's table; training reads the same tensors."""
    from include.ops.validation.pipeline import validate_landed_file
    from model.data import load_task_csv, read_task_table

    plain = task_text(split_digits, 0)
    data = VARIANTS[variant](plain)
    result = validate_landed_file(
        land(val_env, "task_0.csv", data), manifest_path=val_env.landing_dir / "manifest.json"
    )
    assert result.status == "validated", result.reason
    assert result.rows == len(plain.splitlines()) - 1
    assert Path(result.path).read_bytes() == data, "the store keeps the landed bytes"

    ours, ref = read_task_table(data), read_task_table(plain.encode())
    assert ours.header == ref.header and ours.header[0] == "f0"
    for a, b in zip(ours.columns, ref.columns, strict=True):
        assert a.dtype == b.dtype and np.array_equal(a, b)

    trained, expected = load_task_csv(Path(result.path)), load_task_csv(split_digits.parent / "task_0.csv")
    for name in ("x_train", "y_train", "x_test", "y_test"):
        assert getattr(trained, name).equal(getattr(expected, name)), name


def test_learner_trains_on_the_validated_bom_crlf_file(val_env, split_digits, tmp_path):
    """The learner (training's path) learns a task whose validated file has a BOM and CRLF line ends."""
    from include.ops.validation.pipeline import validate_landed_file
    from model.learner import ContinualLearner
    from tests.model.model_support import tiny

    data = VARIANTS["all_four"](task_text(split_digits, 0))
    result = validate_landed_file(
        land(val_env, "task_0.csv", data), manifest_path=val_env.landing_dir / "manifest.json"
    )
    assert result.status == "validated", result.reason
    stream = json.loads(split_digits.read_text())
    stream["tasks"] = stream["tasks"][:1]
    (tmp_path / "task_0.csv").write_bytes(Path(result.path).read_bytes())
    (tmp_path / "manifest.json").write_text(json.dumps(stream))
    learner = ContinualLearner(tmp_path / "manifest.json", tmp_path / "state", train_cfg=tiny())
    learned = learner.learn_task("task_0")
    assert learned.task_ids == ["task_0"] and 0.0 <= learned.accuracies["task_0"] <= 1.0


# the bad-file kinds of the validation corpus that are bad as files (not as a batch of a stream): training must
# refuse each too (the others, e.g. a single class or a leak, are batch policy that only validation knows)
FILE_LEVEL = [
    "empty_file",
    "header_only",
    "truncated",
    "garbled",
    "non_utf8",
    "missing_column",
    "extra_column",
    "wrong_dtype",
    "nan",
    "out_of_range",
]


@pytest.mark.parametrize("case", FILE_LEVEL)
def test_training_refuses_what_validation_rejects_as_a_file(case, split_digits, tmp_path):
    from model.data import load_task_csv

    data = CASES[case][0](task_text(split_digits, 0))
    bad = tmp_path / "task_0.csv"
    bad.write_bytes(data.encode() if isinstance(data, str) else data)
    with pytest.raises(ValueError, match="malformed task file") as err:
        load_task_csv(bad)
    assert str(bad) in str(err.value)


def test_reader_names_the_first_non_integer_cell_and_keeps_gx_columns():
    """A bad cell leaves a typed column for GX (float with NaN, or text) and training names line and value."""
    from model.data import read_task_table
    from model.task_table import TaskFileError

    text = "f0,f1,label,split\n1,2,0,train\n\n3,abc,1,test\n4,NaN,1,test\n"
    table = read_task_table(text.encode())
    assert table.line_numbers.tolist() == [2, 4, 5], "blank lines are skipped, lines keep their numbers"
    assert table.column("f0").dtype == np.int64 and table.column("f1").dtype == object
    assert table.not_integer == {"f1": (4, "abc")}
    with pytest.raises(TaskFileError, match=r"non-integer value 'abc' in column f1 at line 4"):
        table.task_arrays()
    nan = read_task_table(b"f0,label,split\n1,0,train\n,1,test\nNaN,1,test\n").column("f0")
    assert nan.dtype == np.float64 and np.isnan(nan[1:]).all()
    assert read_task_table(b'f0,label,split\n" 3",0,"train"\n').column("f0").tolist() == [3]


@pytest.mark.parametrize(
    ("data", "check", "message"),
    [
        (b"f0,label,split\r1,0,train\r", "csv_structure", "carriage return that does not end the line"),
        (b"f0,f0,split\n1,0,train\n", "csv_structure", "names column 'f0' twice"),
        (b"\xef\xbb\xbff0,label\n\xff,1\n", "encoding", r"byte 0xff at offset 12 \(line 2\)"),
        (b"\xef\xbb\xbf", "empty_file", "only whitespace"),
        (b'f0,label,split\n"1,0,train\n', "csv_structure", "unexpected end of data"),
    ],
)
def test_reader_refusals_are_named(data, check, message):
    from model.data import read_task_table
    from model.task_table import TaskFileError

    with pytest.raises(TaskFileError, match=message) as err:
        read_task_table(data)
    assert err.value.check == check


def test_validation_frame_is_the_reader_table(split_digits):
    """What GX validates is built from the reader's columns, not by a second CSV parser."""
    from include.ops.validation.prechecks import read_table, table_frame

    data = VARIANTS["all_four"](task_text(split_digits, 1))
    table = read_table(data)
    frame = table_frame(table)
    assert list(frame.columns) == table.header and len(frame) == len(table)
    assert frame["f10"].dtype == np.int64 and frame["split"].dtype == object
    assert np.array_equal(frame["label"].to_numpy(), table.column("label"))
