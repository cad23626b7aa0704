"""symbols/user.fds_kept: an fd a library call closes by mistake is put back (libbcc 0.26
closes an uninitialized fd when a process has no perf map: it was our stdout once)."""
from __future__ import annotations

import os

from ebpfprof.symbols.user import fds_kept


def test_an_fd_closed_by_the_call_is_put_back_as_it_was():
    r, w = os.pipe()
    try:
        before = os.fstat(w)
        assert fds_kept(lambda: os.close(w) or "result") == "result"
        after = os.fstat(w)                        # open again, and the same pipe
        assert (after.st_dev, after.st_ino) == (before.st_dev, before.st_ino)
        os.write(w, b"x")
        assert os.read(r, 1) == b"x"
    finally:
        os.close(r)
        os.close(w)


def test_fds_the_call_opens_or_leaves_alone_are_untouched():
    opened = []
    fds_kept(lambda: opened.append(os.open(os.devnull, os.O_RDONLY)))
    try:
        os.fstat(opened[0])                        # the call's own fd stays its own
    finally:
        os.close(opened[0])
    count = len(os.listdir("/proc/self/fd"))
    fds_kept(lambda: None)
    assert len(os.listdir("/proc/self/fd")) == count   # no duplicate left behind
