"""pystack on the interpreter running the tests (this process reads its own /proc/self/mem):
detection, the TLS rule, the thread list, the frame walk and the resolver, checked against
what CPython itself says (ctypes, sys._getframe, traceback). No ptrace, no other process."""
from __future__ import annotations

import ctypes
import os
import platform
import sys
import threading
import traceback

import pytest

from ebpfprof.pystack import PARAM_NAMES, UNKNOWN, PyFrameResolver, bpf_params, python_target
from ebpfprof.pystack.walker import walk_frames

pytestmark = pytest.mark.skipif(platform.machine() != "x86_64", reason="the TLS rule is x86-64 glibc's")

_libc = ctypes.CDLL(None, use_errno=True)
ctypes.pythonapi.PyThreadState_Get.restype = ctypes.c_void_p


def _fs_base() -> int:
    value = ctypes.c_ulong()
    assert _libc.syscall(158, 0x1003, ctypes.byref(value)) == 0      # arch_prctl(ARCH_GET_FS)
    return value.value


@pytest.fixture(scope="module")
def target():
    t = python_target(os.getpid())
    assert t, getattr(t, "reason", None)
    return t


def test_detects_this_interpreter(target):
    assert target.version == platform.python_version()
    assert target.version_hex == sys.hexversion
    runtime = ctypes.addressof(ctypes.c_char.in_dll(ctypes.pythonapi, "_PyRuntime"))
    assert target.runtime_addr == runtime
    assert target.layout.version == sys.version_info[:2]


def test_bpf_params_names_are_stable(target):
    p = bpf_params(target)
    assert tuple(p) == PARAM_NAMES
    assert all(isinstance(v, int) for v in p.values())
    assert p["tss_key_addr"] == target.runtime_addr + target.layout.runtime_tss_key


def _tstate_by_rule(target) -> int:
    p = bpf_params(target)
    key = target.memory.u32(p["tss_key_addr"])
    assert key < p["tls_max_key"]
    return target.memory.u64(_fs_base() + p["tls_specific_off"] + key * p["tls_entry_size"] + p["tls_data_off"])


def test_tls_rule_gives_this_threads_state(target):
    assert _tstate_by_rule(target) == ctypes.pythonapi.PyThreadState_Get()
    seen = {}

    def in_thread():
        seen["rule"], seen["api"] = _tstate_by_rule(target), ctypes.pythonapi.PyThreadState_Get()
    t = threading.Thread(target=in_thread)
    t.start()
    t.join()
    assert seen["rule"] == seen["api"] != ctypes.pythonapi.PyThreadState_Get()


def test_walk_and_resolve_this_stack(target):
    tstate = ctypes.pythonapi.PyThreadState_Get()
    stack, pairs = traceback.extract_stack(), walk_frames(target, tstate)          # one line: same lineno
    frames = PyFrameResolver().resolve(target, pairs)
    # innermost: the walker's own frames (as they were when it read them), then this function,
    # then pytest's down to <module>
    names = [f.qualname for f in frames]
    assert "walk_frames" in names[:3]
    mine = [(f.qualname.rsplit(".", 1)[-1], f.filename, f.line)
            for f in frames[names.index("test_walk_and_resolve_this_stack"):]]
    assert mine == [(s.name, s.filename, s.lineno) for s in reversed(stack)]


def _sample_codes():
    import json.decoder
    import argparse
    for fn in (json.decoder.JSONDecoder.raw_decode, argparse.ArgumentParser.parse_known_args, traceback.format_exc):
        yield fn.__code__


def test_resolver_reads_code_objects(target):
    resolver = PyFrameResolver()
    for code in _sample_codes():
        start = id(code) + target.layout.code_adaptive
        lines = [p[0] for p in code.co_positions()]
        for unit in range(len(lines)):
            got = resolver.frame(target, id(code), start + 2 * unit)
            if got is None:                            # before RESUME: left out like tracebacks do
                continue
            assert (got.qualname, got.filename, got.line) == (code.co_qualname, code.co_filename, lines[unit])


def test_non_code_pointers_give_unknown(target):
    resolver = PyFrameResolver()
    not_code = "just a str"
    assert resolver.frame(target, id(not_code), id(not_code) + 400) is UNKNOWN
    assert resolver.frame(target, 8, 16) is UNKNOWN                     # unmapped


def test_a_frame_running_none_is_no_frame(target):
    # 3.13's C-stack entry frame runs None; a walk that does not skip it by owner gets no frame for it
    assert target.none_addr == id(None)
    assert PyFrameResolver().frame(target, id(None), id(None) + 400) is None
