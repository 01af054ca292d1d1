"""Pre-GX checks as plain functions: names, sizes, bytes and CSV structure, each failure named."""

from __future__ import annotations

import pytest

from include.ops.validation.prechecks import (
    PrecheckFailure,
    check_csv_structure,
    check_file_name,
    check_size,
    decode_text,
)
from include.ops.validation.store import safe_name


@pytest.mark.parametrize("name", ["task_0.csv", "Task-1.v2.csv"])
def test_plain_names_pass(name):
    assert check_file_name(name) == name


@pytest.mark.parametrize(
    "name",
    [
        "../task_0.csv",
        "/etc/passwd.csv",
        "a/b.csv",
        "a\\b.csv",
        "..",
        ".hidden.csv",
        "x\x00.csv",
        "",
        "t.CSV",
    ],
)
def test_unsafe_names_fail(name):
    with pytest.raises(PrecheckFailure) as err:
        check_file_name(name)
    assert err.value.check == "file_name"


def test_safe_name_never_escapes():
    for name in ["../../etc/passwd", "..\\..\\x.csv", "/abs/task_0.csv", "...", ""]:
        cleaned = safe_name(name)
        assert (
            "/" not in cleaned and "\\" not in cleaned and ".." not in cleaned and not cleaned.startswith(".")
        )


def test_size_and_empty():
    check_size(10, 10)
    with pytest.raises(PrecheckFailure, match="size_limit: file is 11 bytes, over the limit of 10"):
        check_size(11, 10)
    with pytest.raises(PrecheckFailure, match="empty_file"):
        check_size(0, 10)


def test_decode_names_offset_and_line():
    with pytest.raises(PrecheckFailure, match=r"encoding: not UTF-8: byte 0xff at offset 4 \(line 2\)"):
        decode_text(b"a,b\n\xff,1\n")
    with pytest.raises(PrecheckFailure, match="NUL byte at offset 4"):
        decode_text(b"a,b\n\x00,1\n")
    with pytest.raises(PrecheckFailure, match="empty_file: file holds only whitespace"):
        decode_text(b" \n\n")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a,b,c\n1,2,3\n4,5\n", "line 3 has 2 fields, the header has 3"),
        ("a,b,c\n1,2,3\n4,5,6,7\n", "line 3 has 4 fields"),
        ('a,b,c\n"1,2,3\n', "unparseable CSV at line 2: unexpected end of data"),
        ('a,b,c\n1,"2"x,3\n', "unparseable CSV"),
        (",\n1,2\n", "line 1 is not a CSV header"),
    ],
)
def test_csv_structure_failures(text, message):
    with pytest.raises(PrecheckFailure, match=message) as err:
        check_csv_structure(text)
    assert err.value.check == "csv_structure"


def test_csv_structure_accepts_quotes_crlf_and_blank_lines():
    assert check_csv_structure('a,b\r\n"1,5",2\r\n\r\n3,4\r\n') == ["a", "b"]
    assert check_csv_structure("a,b\n1,2\n\n3,4\n") == ["a", "b"]
