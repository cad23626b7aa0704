"""Kernel tests: real tracepoints, real BPF, real events. They need root, BCC and kernel headers,
and are skipped with the detected reason otherwise — never faked.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

def _kernel_ready() -> str | None:
    """None when real-event tests can run, else why not."""
    if os.geteuid() != 0:
        return "needs root (BPF programs and tracefs)"
    try:
        from ebpfprof.sources.bpf import import_bcc
        from ebpfprof.kernel.features import kernel_headers
        from ebpfprof.kernel.tracefs import tracefs_root

        import_bcc()
        kernel_headers()
        tracefs_root()
    except Exception as e:  # the reason is the error's own message
        return f"kernel tests cannot run here: {getattr(e, 'message', e)}"
    return None


_REASON = _kernel_ready()


def pytest_collection_modifyitems(config, items):
    if _REASON is None:
        return
    skip = pytest.mark.skip(reason=_REASON)
    for item in items:
        if "/tests/kernel/" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def workload_bin() -> Path:
    from runner import build_testprog

    return build_testprog("workload")
