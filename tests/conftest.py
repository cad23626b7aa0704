"""Fixtures shared by every test; helpers to import are in support.py."""
from __future__ import annotations

import pytest


@pytest.fixture
def clean_ring_state():
    """Hooks and the realtime offset are module globals of the extension: leave them clean.
    Test modules that make events use it for every test (pytestmark)."""
    from ebpfprof import _ring

    _ring.set_hooks()
    _ring.set_realtime_offset(0)
    yield
    _ring.set_hooks()
    _ring.set_realtime_offset(0)
