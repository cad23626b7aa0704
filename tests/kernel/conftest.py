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
    # Our own modules are imported outside the try: a broken import fails the run, it does not
    # skip every kernel test.
    from ebpfprof.bcc_loader import import_bcc
    from ebpfprof.errors import EbpfprofError
    from ebpfprof.kernel.features import kernel_headers
    from ebpfprof.kernel.tracefs import tracefs_root

    try:
        import_bcc()
        kernel_headers()
        tracefs_root()
    except EbpfprofError as e:  # what this machine lacks, in the error's own words
        return f"kernel tests cannot run here: {e.message}"
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
