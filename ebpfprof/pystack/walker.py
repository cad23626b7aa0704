"""The stack walk the BPF program does at an event, done from user space on a live thread, with
exactly the values of ``bpf_params(target)``: the reference that validates those values (the
layout and the TLS rule) on real interpreters, and shows the BPF side which reads to make.

The thread's FS base comes from ptrace here (the thread is stopped for a moment); BPF reads
``task->thread.fsbase``. Without the TLS rule (``via="threads"``) the thread state is found in
the interpreters' thread lists by native_thread_id (the tid in the process's pid namespace).
Pairs come innermost first.
"""
from __future__ import annotations

from ebpfprof.pystack._ptrace import fs_base
from ebpfprof.pystack.detect import PyTarget, ns_tid
from ebpfprof.pystack.params import bpf_params

__all__ = ["walk_thread", "thread_state", "walk_frames", "MAX_FRAMES", "MAX_THREADS", "WalkError"]

MAX_FRAMES = 512
MAX_THREADS = 4096
MAX_INTERPRETERS = 64


class WalkError(RuntimeError):
    """The thread's state cannot be found this way."""


def _tstate_by_tls(target: PyTarget, p: dict[str, int], tid: int) -> int:
    if not p["tls_ok"]:
        raise WalkError(f"process {target.pid}: no TLS rule for its libc")
    key = target.memory.u32(p["tss_key_addr"])
    if key >= p["tls_max_key"]:
        raise WalkError(f"process {target.pid}: TSS key {key} is past the first pthread key block")
    return target.memory.u64(fs_base(tid) + p["tls_specific_off"] + key * p["tls_entry_size"] + p["tls_data_off"])


def _tstate_by_threads(target: PyTarget, p: dict[str, int], tid: int) -> int:
    mem = target.memory
    want = ns_tid(target.pid, tid)
    interp = mem.u64(p["interpreters_head_addr"])
    for _ in range(MAX_INTERPRETERS):
        if not interp:
            break
        tstate = mem.u64(interp + p["interp_threads_head_off"])
        for _ in range(MAX_THREADS):
            if not tstate:
                break
            if mem.u64(tstate + p["tstate_native_tid_off"]) == want:
                return tstate
            tstate = mem.u64(tstate + p["tstate_next_off"])
        interp = mem.u64(interp + p["interp_next_off"])
    return 0


def thread_state(target: PyTarget, tid: int, via: str = "tls") -> int:
    """Thread ``tid``'s (host tid) ``PyThreadState *``, 0 if it has none: by the TLS rule
    (``via="tls"``, what BPF does) or the thread list (``via="threads"``)."""
    p = bpf_params(target)
    if via == "tls":
        return _tstate_by_tls(target, p, tid)
    if via == "threads":
        return _tstate_by_threads(target, p, tid)
    raise ValueError(f"via must be 'tls' or 'threads', not {via!r}")


def walk_frames(target: PyTarget, tstate: int, max_frames: int = MAX_FRAMES) -> list[tuple[int, int]]:
    """(code object, instruction pointer) per frame of thread state ``tstate``, innermost first."""
    mem, p = target.memory, bpf_params(target)
    frame = mem.u64(tstate + p["tstate_frame_off"])
    if frame and p["cframe_frame_off"] >= 0:
        frame = mem.u64(frame + p["cframe_frame_off"])
    skip = p["frame_owner_skip"]
    pairs: list[tuple[int, int]] = []
    for _ in range(max_frames):
        if not frame:
            break
        if skip < 0 or mem.u8(frame + p["frame_owner_off"]) != skip:
            pairs.append((mem.u64(frame + p["frame_code_off"]), mem.u64(frame + p["frame_instr_off"])))
        frame = mem.u64(frame + p["frame_previous_off"])
    return pairs


def walk_thread(target: PyTarget, tid: int, via: str = "tls") -> list[tuple[int, int]]:
    """The (code object, instruction pointer) pairs of thread ``tid`` (host tid), innermost
    first; [] for a thread without a Python thread state."""
    tstate = thread_state(target, tid, via)
    return walk_frames(target, tstate) if tstate else []
