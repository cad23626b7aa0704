"""Helpers the tests import (``from support import ...``): where things are, fixture formats,
golden files, event specs. No kernel needed."""
from __future__ import annotations

import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import pytest

from ebpfprof.kernel.event_format import EventFormat, parse_format
from ebpfprof.resolve.spec import EventSpec, handler_name

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures"
GOLDEN = ROOT / "tests" / "golden"
REGEN_GOLDEN = bool(os.environ.get("EBPFPROF_REGEN_GOLDEN"))


def fixture_format(name: str) -> EventFormat:
    """A captured format file: fixture_format('sched_sched_wakeup')."""
    text = (FIXTURES / "formats" / f"{name}.format").read_text()
    return parse_format(text, name.split("_", 1)[0])


def check_golden(relpath: str, actual: str) -> None:
    """Compare with tests/golden/RELPATH; EBPFPROF_REGEN_GOLDEN=1 rewrites it instead."""
    path = GOLDEN / relpath
    if REGEN_GOLDEN or not path.exists():
        if not REGEN_GOLDEN:
            pytest.fail(f"golden file {path} is missing; run with EBPFPROF_REGEN_GOLDEN=1 to create it")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(actual)
        return
    expected = path.read_text()
    assert actual == expected, f"generated text differs from {path} (EBPFPROF_REGEN_GOLDEN=1 to accept)"


def event_spec(fmt: EventFormat, name: str | None = None, *, header_known: bool = False) -> EventSpec:
    """The EventSpec a run would give the tracepoint ``fmt`` describes."""
    shown = name or fmt.full_name
    return EventSpec(event_name=shown, handler=handler_name(None, shown), title=shown, format=fmt,
                     header_known=header_known)


@contextmanager
def fake_tracefs(root: Path, monkeypatch, names):
    """A tracefs under ``root`` holding the fixture formats ``names`` (sched_sched_wakeup, ...),
    used by ebpfprof through EBPFPROF_TRACEFS, with tracefs.py's caches cleared around it."""
    from ebpfprof.kernel import tracefs

    for name in names:
        system, event = name.split("_", 1)
        d = root / "events" / system / event
        d.mkdir(parents=True)
        shutil.copy(FIXTURES / "formats" / f"{name}.format", d / "format")
    monkeypatch.setenv("EBPFPROF_TRACEFS", str(root))
    caches = (tracefs.tracefs_root, tracefs.list_tracepoints, tracefs.read_format)
    for c in caches:
        c.cache_clear()
    try:
        yield root
    finally:
        for c in caches:
            c.cache_clear()
