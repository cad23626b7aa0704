"""CPU / pid / tid lists as users write them (``0-3,6``): parse, errors, and the way back."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from ebpfprof.lang.idlist import format_id_list, parse_id_list


@pytest.mark.parametrize("text, ids", [
    ("0", (0,)),
    ("7", (7,)),
    ("0-3", (0, 1, 2, 3)),
    ("0-3,6", (0, 1, 2, 3, 6)),
    ("6,0-2", (0, 1, 2, 6)),
    ("3,3,1-3", (1, 2, 3)),
    (" 1 , 2-3 ", (1, 2, 3)),
    ("5-5", (5,)),
    ("010", (10,)),
    ("4194305", (4194305,)),
])
def test_parse(text, ids):
    assert parse_id_list(text) == ids


@pytest.mark.parametrize("text, message", [
    ("", "empty -C list"),
    ("  ", "empty -C list"),
    ("1,,2", "empty item in -C list '1,,2'"),
    (",1", "empty item in -C list ',1'"),
    ("1,", "empty item in -C list '1,'"),
    ("a", "'a' in -C list 'a' is not a number or a range like 0-3"),
    ("0-a", "'0-a' in -C list '0-a' is not a number or a range like 0-3"),
    ("0x3", "'0x3' in -C list '0x3' is not a number or a range like 0-3"),
    ("1-2-3", "'1-2-3' in -C list '1-2-3' is not a number or a range like 0-3"),
    ("-1", "'-1' in -C list '-1' is not a number or a range like 0-3"),
    ("3-1", "bad range '3-1' in -C list '3-1'"),
    ("0-99999999", "range '0-99999999' in -C list '0-99999999' is too large"),
])
def test_errors_name_the_bad_part(text, message):
    with pytest.raises(ValueError) as info:
        parse_id_list(text, "-C list")
    assert str(info.value) == message


def test_default_name_of_the_list():
    with pytest.raises(ValueError, match=r"^empty list$"):
        parse_id_list("")


@pytest.mark.parametrize("ids, text", [
    ((), ""),
    ((0,), "0"),
    ((0, 1, 2, 3, 6), "0-3,6"),
    ((6, 0, 2, 1, 3), "0-3,6"),
    ((1, 1, 2), "1-2"),
    ((1, 3, 5), "1,3,5"),
    ([9, 10, 11, 20, 21], "9-11,20-21"),
])
def test_format(ids, text):
    assert format_id_list(ids) == text


@given(st.sets(st.integers(min_value=0, max_value=5000), min_size=1, max_size=60))
def test_round_trip(ids):
    text = format_id_list(tuple(ids))
    assert parse_id_list(text) == tuple(sorted(ids))
    assert format_id_list(parse_id_list(text)) == text
