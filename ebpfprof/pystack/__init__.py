"""The Python stack of a traced CPython process (3.11-3.13, x86-64 glibc).

    target = python_target(pid)          # PyTarget, or NotPython (falsy) with .reason
    params = bpf_params(target)          # what the BPF walk reads, by stable name (params.py)
    ... the BPF program records (code object, instruction pointer) per frame, innermost first ...
    frames = PyFrameResolver().resolve(target, pairs)     # [PyFrame(qualname, filename, line)]

layout.py (struct offsets per version) · memory.py (/proc/PID/mem) · detect.py (which Python,
where its globals are) · params.py (the BPF map values) · linetable.py (co_linetable) ·
resolver.py (pairs -> frames) · walker.py (the same walk from user space, for tests).
"""
from ebpfprof.pystack.detect import NotPython, PyTarget, python_target
from ebpfprof.pystack.layout import LAYOUTS, PyLayout
from ebpfprof.pystack.params import PARAM_NAMES, bpf_params
from ebpfprof.pystack.resolver import UNKNOWN, PyFrame, PyFrameResolver

__all__ = ["python_target", "PyTarget", "NotPython", "PyLayout", "LAYOUTS", "bpf_params", "PARAM_NAMES",
           "PyFrameResolver", "PyFrame", "UNKNOWN"]
