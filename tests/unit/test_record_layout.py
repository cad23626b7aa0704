"""The BPF record header, bpf/ep_sample.h, is one definition for both sides: the generated
program pastes its text and the reader compiles it. This holds the compiled reader
(``_ring.SAMPLE_LAYOUT``) to the layout the header documents; test_perfevent.py holds its
fake ring to the compiled one."""
from __future__ import annotations

import re
from pathlib import Path

from ebpfprof import _ring

HEADER = Path(__file__).resolve().parents[2] / "bpf" / "ep_sample.h"
FIELD = re.compile(r"^\s*(u8|u16|u32|u64)\s+(\w+);\s*/\*\s*(\d+)\s+(\d+)\b", re.M)
SIZE = re.compile(r"^};\s*/\*\s*size (\d+) \*/", re.M)


def documented() -> tuple[list[tuple[str, int, int]], int]:
    text = HEADER.read_text()
    fields = [(name, int(off), int(size)) for ctype, name, off, size in FIELD.findall(text)]
    for (ctype, name, _, size) in FIELD.findall(text):
        assert int(size) == int(ctype[1:]) // 8, f"{name}: documented size does not match {ctype}"
    return fields, int(SIZE.search(text).group(1))


def test_the_header_documents_a_packed_layout():
    fields, size = documented()
    assert [f[0] for f in fields] == ["time", "pid", "tid", "cpu", "selector", "nr_frames", "lost", "raw_size"]
    end = 0
    for name, off, sz in fields:
        assert off == end, f"{name} at {off}: the layout has a hole or an overlap"
        end = off + sz
    assert end == size == 32


def test_the_reader_compiles_the_documented_layout():
    fields, size = documented()
    assert list(_ring.SAMPLE_LAYOUT) == fields
    assert _ring.SAMPLE_HEADER_SIZE == size

