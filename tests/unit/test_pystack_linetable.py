"""The co_linetable decoder against CPython's own decoders (co_positions, co_lines), for every
instruction of every code object of a few stdlib modules: in this interpreter directly, and in
each other CPython 3.11+ on the machine through tests/testprogs/pystack_dump_code.py."""
from __future__ import annotations

import dis
import json
import subprocess
import sys
import types
from pathlib import Path

import pytest

from ebpfprof.pystack.linetable import LineTable, LinetableError, positions

DUMP = Path(__file__).parent.parent / "testprogs" / "pystack_dump_code.py"
OTHER_PYTHONS = {
    "3.11.7": "/root/.pyenv/versions/3.11.7/bin/python3.11",
    "3.12.1": "/root/.pyenv/versions/3.12.1/bin/python3.12",
    "3.13.0": "/root/.pyenv/versions/3.13.0/bin/python3.13",
}


def _codes(code: types.CodeType):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from _codes(const)


def _check(linetable: bytes, firstlineno: int, units: int, want_positions, want_lines, what: str) -> None:
    got = [list(p) for p in positions(linetable, firstlineno)]
    assert got == [list(p) for p in want_positions], what
    assert len(got) == units, what
    table = LineTable(linetable, firstlineno)
    for start, end, line in want_lines:               # co_lines: byte offsets
        for unit in range(start // 2, end // 2):
            assert table.line(unit) == line, (what, unit)
    assert table.line(units) is None and table.line(-1) is None


@pytest.mark.parametrize("module", ["json.decoder", "dis", "argparse", "typing", "inspect", "traceback"])
def test_this_interpreter(module):
    mod = __import__(module, fromlist=["_"])
    top = compile(Path(mod.__file__).read_text(), mod.__file__, "exec")
    n = 0
    for code in _codes(top):
        _check(code.co_linetable, code.co_firstlineno, len(code.co_code) // 2,
               code.co_positions(), code.co_lines(), code.co_qualname)
        n += 1
    assert n > 10


def test_line_of_each_instruction_matches_dis():
    for code in _codes(compile(Path(dis.__file__).read_text(), dis.__file__, "exec")):
        table = LineTable(code.co_linetable, code.co_firstlineno)
        for ins in dis.get_instructions(code, show_caches=True):
            assert table.line(ins.offset // 2) == ins.positions.lineno, (code.co_qualname, ins)


@pytest.mark.parametrize("version", sorted(OTHER_PYTHONS))
def test_other_interpreters(version):
    python = OTHER_PYTHONS[version]
    if not Path(python).exists():
        pytest.skip(f"no CPython {version} at {python}")
    out = subprocess.run([python, str(DUMP)], capture_output=True, text=True, timeout=120, check=True).stdout
    n = 0
    for line in out.splitlines():
        c = json.loads(line)
        _check(bytes.fromhex(c["linetable"]), c["firstlineno"], c["units"], c["positions"], c["lines"],
               f"{version} {c['module']} {c['qualname']}")
        n += 1
    assert n > 100


def test_malformed_tables_raise():
    with pytest.raises(LinetableError):
        list(positions(b"\x01", 1))                      # no entry start bit
    with pytest.raises(LinetableError):
        list(positions(bytes([0x80 | 14 << 3]), 1))     # long form cut short
    assert list(positions(b"", 1)) == [] and LineTable(b"", 1).line(0) is None
