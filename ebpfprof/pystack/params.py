"""The per-process values the BPF stack walk needs, by stable name: one map entry per traced
CPython process (keyed by tgid), from ``bpf_params(python_target(pid))``.

Every value is an int; ``-1`` means "not in this version". ``*_addr`` are absolute addresses in
the process, ``*_off`` byte offsets inside a struct. walker.py walks with exactly these values
(tests/kernel/test_pystack_live.py checks them against tracebacks), so the BPF walk is::

    key    = *(u32 *)tss_key_addr
    tstate = key < tls_max_key ? *(u64 *)(fs_base + tls_specific_off + key * tls_entry_size + tls_data_off) : 0
           (tls_ok == 0, or tstate == 0 and a fallback is wanted: walk the thread list:
            interp = *interpreters_head_addr; t = *(interp + interp_threads_head_off);
            t = *(t + tstate_next_off) until *(t + tstate_native_tid_off) == tid in pidns_dev/pidns_ino;
            interp = *(interp + interp_next_off))
    frame  = *(tstate + tstate_frame_off); if cframe_frame_off >= 0: frame = *(frame + cframe_frame_off)
    while frame and n < MAX:
        if frame_owner_skip < 0 or *(u8 *)(frame + frame_owner_off) != frame_owner_skip:   (a C call's shim)
            emit (*(u64 *)(frame + frame_code_off), *(u64 *)(frame + frame_instr_off))
        frame = *(frame + frame_previous_off)

fs_base is the thread's ``task->thread.fsbase`` (its offset from the kernel's BTF, never headers).
"""
from __future__ import annotations

import os

from ebpfprof.pystack.detect import PyTarget

__all__ = ["bpf_params", "PARAM_NAMES"]

PARAM_NAMES = (
    "version_hex",             # PY_VERSION_HEX of the process (0x030C01F0 = 3.12.1)
    "tss_key_addr",            # &_PyRuntime.[gilstate.]autoTSSkey._key: u32 pthread key of the thread's PyThreadState*
    "tls_ok",                  # 1: the glibc rule below finds the thread's PyThreadState*; 0: walk the thread list
    "tls_specific_off",        # 0x310: offsetof(struct pthread, specific_1stblock), from fs_base
    "tls_entry_size",          # 16: sizeof(struct pthread_key_data) {seq, data}
    "tls_data_off",            # 8: offsetof(struct pthread_key_data, data)
    "tls_max_key",             # 32: keys >= this are in the second-level blocks (use the thread list)
    "interpreters_head_addr",  # &_PyRuntime.interpreters.head: PyInterpreterState *
    "interp_next_off",         # PyInterpreterState.next
    "interp_threads_head_off", # PyInterpreterState.threads.head: PyThreadState *
    "tstate_next_off",         # PyThreadState.next
    "tstate_native_tid_off",   # PyThreadState.native_thread_id: unsigned long, the tid in the process's pid namespace
    "tstate_frame_off",        # first hop from PyThreadState*: cframe (3.11, 3.12) / current_frame (3.13)
    "cframe_frame_off",        # second hop: _PyCFrame.current_frame (3.11: 8, 3.12: 0); -1 on 3.13 (no hop)
    "frame_code_off",          # _PyInterpreterFrame.f_code / f_executable: PyCodeObject *  -> pair[0]
    "frame_instr_off",         # _PyInterpreterFrame.prev_instr / instr_ptr: _Py_CODEUNIT * -> pair[1]
    "frame_previous_off",      # _PyInterpreterFrame.previous
    "frame_owner_off",         # _PyInterpreterFrame.owner: u8
    "frame_owner_skip",        # owner of C-stack shim frames to skip (FRAME_OWNED_BY_CSTACK = 3, 3.12+); -1: none (3.11)
    "frame_is_entry_off",      # _PyInterpreterFrame.is_entry: u8, 1 on the outermost frame of a C call into
                               # the interpreter (3.11: 68); -1 on 3.12+ (a shim frame marks that instead)
    "pidns_dev",               # st_dev of /proc/PID/ns/pid: for bpf_get_ns_current_pid_tgid()
    "pidns_ino",               # st_ino of /proc/PID/ns/pid
)


def bpf_params(target: PyTarget) -> dict[str, int]:
    """The values of PARAM_NAMES for ``target``, in that order."""
    lay, tls = target.layout, target.tls
    hops = lay.tstate_frame
    try:
        ns = os.stat(f"/proc/{target.pid}/ns/pid")
        pidns_dev, pidns_ino = ns.st_dev, ns.st_ino
    except OSError:
        pidns_dev = pidns_ino = 0
    params = {
        "version_hex": target.version_hex,
        "tss_key_addr": target.tss_key_addr,
        "tls_ok": int(tls is not None),
        "tls_specific_off": tls.specific if tls else -1,
        "tls_entry_size": tls.entry_size if tls else -1,
        "tls_data_off": tls.data if tls else -1,
        "tls_max_key": tls.max_key if tls else 0,
        "interpreters_head_addr": target.interpreters_head_addr,
        "interp_next_off": lay.interp_next,
        "interp_threads_head_off": lay.interp_threads_head,
        "tstate_next_off": lay.tstate_next,
        "tstate_native_tid_off": lay.tstate_native_thread_id,
        "tstate_frame_off": hops[0],
        "cframe_frame_off": hops[1] if len(hops) > 1 else -1,
        "frame_code_off": lay.frame_code,
        "frame_instr_off": lay.frame_instr,
        "frame_previous_off": lay.frame_previous,
        "frame_owner_off": lay.frame_owner,
        "frame_owner_skip": lay.frame_owner_skip,
        "frame_is_entry_off": lay.frame_is_entry,
        "pidns_dev": pidns_dev,
        "pidns_ino": pidns_ino,
    }
    return params
