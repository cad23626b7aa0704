"""Golden files: exactly what C each representative filter becomes.

The cases are in tests/golden/filters/cases.json (tests/kernel loads the same ones into the
kernel). After a deliberate change to the emitted C, regenerate the files and review the diff:

    EBPFPROF_REGEN_GOLDEN=1 python -m pytest tests/unit/test_filter_golden.py
"""
from __future__ import annotations

import json
import os
import pathlib

import pytest

from ebpfprof.lang.filter import compile_filter
from test_filter_gen import ROOT, assert_no_injection, load_format

GOLDEN = ROOT / "tests" / "golden" / "filters"
CASES = json.loads((GOLDEN / "cases.json").read_text())
FN_NAME = "filter_0"


def compile_case(case: dict) -> str:
    system, name = case["event"].split(":")
    fmt = load_format(f"{system}_{name}")
    return compile_filter(case["filter"], fmt, selector=case["event"], fn_name=FN_NAME).c_code.text


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_golden(case):
    code = compile_case(case)
    path: pathlib.Path = GOLDEN / f"{case['name']}.c"
    if os.environ.get("EBPFPROF_REGEN_GOLDEN"):
        path.write_text(code)
    assert path.exists(), f"{path} is missing: run with EBPFPROF_REGEN_GOLDEN=1"
    assert code == path.read_text(), (
        f"{path.name} differs from the generated C; if the change is intended, regenerate with "
        "EBPFPROF_REGEN_GOLDEN=1 and review the diff")
    assert_no_injection(code, FN_NAME)


def test_no_stray_golden_files():
    names = {c["name"] for c in CASES}
    assert {p.stem for p in GOLDEN.glob("*.c")} == names
