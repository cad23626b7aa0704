"""The stack walk the BPF program does at an event, done from user space on a live thread: the
reference that validates a layout and the TLS rule on real interpreters (tests), and shows the
BPF side exactly which reads to make.

    tstate = *(fs_base + tls.specific + key * tls.entry_size + tls.data)      key = *tss_key_addr
    frame  = *(tstate + tstate_frame[0]) [-> *(frame + tstate_frame[1])]
    loop:  owner == frame_owner_skip ? skip : record (*(frame + frame_code), *(frame + frame_instr))
           frame = *(frame + frame_previous)

or, without the TLS rule, ``thread_state(..., via="threads")``: the interpreters' thread lists,
matching native_thread_id with the thread's id in its pid namespace. Pairs come innermost first.
"""
from __future__ import annotations

from ebpfprof.pystack._ptrace import fs_base
from ebpfprof.pystack.detect import PyTarget, ns_tid

__all__ = ["walk_thread", "thread_state", "walk_frames", "MAX_FRAMES", "MAX_THREADS", "WalkError"]

MAX_FRAMES = 512
MAX_THREADS = 4096
MAX_INTERPRETERS = 64


class WalkError(RuntimeError):
    """The thread has no Python thread state that this walk can find."""


def _tstate_by_tls(target: PyTarget, tid: int) -> int:
    if target.tls is None:
        raise WalkError(f"process {target.pid}: no TLS rule for its libc")
    key = target.tss_key()
    addr = target.tls.value_address(fs_base(tid), key)
    if addr is None:
        raise WalkError(f"process {target.pid}: TSS key {key} is past the first pthread key block")
    return target.memory.u64(addr)


def _tstate_by_threads(target: PyTarget, tid: int) -> int:
    mem, lay = target.memory, target.layout
    want = ns_tid(target.pid, tid)
    interp = mem.u64(target.interpreters_head_addr)
    for _ in range(MAX_INTERPRETERS):
        if not interp:
            break
        tstate = mem.u64(interp + lay.interp_threads_head)
        for _ in range(MAX_THREADS):
            if not tstate:
                break
            if mem.u64(tstate + lay.tstate_native_thread_id) == want:
                return tstate
            tstate = mem.u64(tstate + lay.tstate_next)
        interp = mem.u64(interp + lay.interp_next)
    return 0


def thread_state(target: PyTarget, tid: int, via: str = "tls") -> int:
    """Thread ``tid``'s ``PyThreadState *`` (0: the thread has none), by the TLS rule
    (``via="tls"``, what BPF does; stops the thread for a moment) or the thread list."""
    if via == "tls":
        return _tstate_by_tls(target, tid)
    if via == "threads":
        return _tstate_by_threads(target, tid)
    raise ValueError(f"via must be 'tls' or 'threads', not {via!r}")


def walk_frames(target: PyTarget, tstate: int, max_frames: int = MAX_FRAMES) -> list[tuple[int, int]]:
    """(code object, instruction pointer) per frame of thread state ``tstate``, innermost first."""
    mem, lay = target.memory, target.layout
    frame = tstate
    for hop in lay.tstate_frame:
        frame = mem.u64(frame + hop) if frame else 0
    pairs: list[tuple[int, int]] = []
    for _ in range(max_frames):
        if not frame:
            break
        if lay.frame_owner_skip < 0 or mem.u8(frame + lay.frame_owner) != lay.frame_owner_skip:
            pairs.append((mem.u64(frame + lay.frame_code), mem.u64(frame + lay.frame_instr)))
        frame = mem.u64(frame + lay.frame_previous)
    return pairs


def walk_thread(target: PyTarget, tid: int, via: str = "tls") -> list[tuple[int, int]]:
    """The (code object, instruction pointer) pairs of thread ``tid`` (host tid), innermost
    first; [] for a thread without a Python thread state."""
    tstate = thread_state(target, tid, via)
    return walk_frames(target, tstate) if tstate else []
