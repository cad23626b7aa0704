"""Python frames of a callchain: the (code, instruction) pairs that bpf/python_stack.h appends
after EP_CONTEXT_PYTHON, turned into frame dicts and put where the interpreter's C frames are.

The run finds its CPython processes when it starts (``PythonProcesses.find``), gives the BPF
program their parameters (``ebpfprof.pystack.bpf_params``), and keeps their ``PyTarget`` here
so that the pairs of their events can be read back from their memory. A Python frame is

    {'addr': 0, 'symbol': QUALNAME, 'offset': LINE, 'kernel': False, 'dso': FILENAME, 'python': True}

so perf-prof scripts that print ``symbol+offset (dso)`` print it unchanged; ``print()`` shows it
as ``QUALNAME (FILENAME:LINE)``.
"""
from __future__ import annotations

import ctypes
import os
import struct
from collections import deque

__all__ = ["PythonProcesses", "CONTEXT_PYTHON", "PY_ENTRY", "PY_TRUNCATED", "merge_python_frames"]

# bpf/python_stack.h's markers, as u64
CONTEXT_PYTHON = (1 << 64) - 3072
PY_ENTRY = (1 << 64) - 3073
PY_TRUNCATED = (1 << 64) - 3074

# The C function that runs a run of Python frames: where they go in a native callchain
_EVAL_FUNCTIONS = {"_PyEval_EvalFrameDefault"}
TRUNCATED_FRAME = {"addr": 0, "symbol": "[truncated]", "offset": 0, "kernel": False,
                   "dso": "[python]", "python": True}


class PythonProcesses:
    """The CPython processes of a run (pid -> PyTarget), and the code-object reader."""

    def __init__(self) -> None:
        from ebpfprof.pystack import PyFrameResolver

        self.targets: dict = {}
        self.skipped: dict[int, str] = {}       # pid -> why it gets no Python frames
        self._resolver = PyFrameResolver()
        # Profiler samples: Python stacks their BPF program wrote to a side ring, waiting for
        # their sample: (cpu, tid, ip) -> (time, words), oldest first
        self._consumers: list = []
        self._side: dict[tuple[int, int, int], deque] = {}
        self._side_count = 0
        self._rings = []                        # BCC's ring objects: kept alive with their callbacks

    def find(self, pids: list[int] | None) -> None:
        """Look at ``pids`` (None: every process now running) for CPython interpreters."""
        from ebpfprof.pystack import python_target

        for pid in pids if pids is not None else _all_pids():
            if pid == os.getpid():
                continue
            try:
                target = python_target(pid)
            except Exception as e:        # a process that exits while it is read
                self.skipped[pid] = f"{type(e).__name__}: {e}"
                continue
            if target:
                self.targets[pid] = target
            else:
                self.skipped[pid] = target.reason

    def fill(self, table) -> None:
        """Give a BPF program the stack-walk parameters of each process (its ep_py_procs)."""
        from ebpfprof.pystack import bpf_params

        for pid, target in self.targets.items():
            values = bpf_params(target)
            if not values["tls_ok"]:
                values["tls_max_key"] = 0          # the BPF walk then uses the thread list
            leaf = table.Leaf()
            for name, _ in leaf._fields_:
                setattr(leaf, name, values[name])
            table[ctypes.c_uint32(pid)] = leaf

    def add_side_ring(self, table, consume) -> None:
        """A profiler's ep_py_ring (bpf/python_sample.h), read by ``consume()`` when a sample's
        frames are asked for: its stack was written just before the sample, so it is there."""
        def record(_ctx, data, size):
            raw = ctypes.string_at(data, size)
            time, _pid, tid, cpu, _sel, nr, _lost, _raw_size, ip = _SIDE_HEADER.unpack_from(raw)
            words = list(struct.unpack_from(f"<{nr}Q", raw, _SIDE_HEADER.size))[1:]   # after EP_CONTEXT_PYTHON
            if self._side_count >= _SIDE_MAX:          # samples nobody asked for: forget them
                self._side.clear()
                self._side_count = 0
            self._side.setdefault((cpu, tid, ip), deque()).append((time, words))
            self._side_count += 1
            return 0

        table.open_ring_buffer(record)
        self._rings.append(table)
        self._consumers.append(consume)

    def side_words(self, cpu: int, tid: int, ip: int, time: int) -> list[int] | None:
        """The Python words of the sample of thread ``tid`` on ``cpu`` at ``ip``, ``time``."""
        if not self._consumers:
            return None
        for consume in self._consumers:
            consume()
        queue = self._side.get((cpu, tid, ip))
        found = None
        # The BPF program runs a few microseconds after perf took the sample's time (and on
        # some events before): the record nearest the sample, within the window, is its own
        while queue and queue[0][0] <= time + _SIDE_WINDOW_NS:
            t, words = queue.popleft()
            self._side_count -= 1
            if abs(t - time) < _SIDE_WINDOW_NS:
                found = words
                break
        if queue is not None and not queue:
            del self._side[(cpu, tid, ip)]
        return found

    def describe(self) -> str:
        """For -v: which processes get Python frames, and why others do not."""
        found = ", ".join(f"{pid} (Python {t.version})" for pid, t in sorted(self.targets.items())[:8])
        text = f"Python frames for {len(self.targets)} process(es)" + (f": {found}" if found else "")
        if len(self.targets) > 8:
            text += ", ..."
        named = [f"{pid}: {why}" for pid, why in sorted(self.skipped.items())]
        if named and len(named) <= 4:
            text += "; none for " + "; ".join(named)
        elif named:
            text += f"; {len(named)} other processes are not CPython 3.11-3.13"
        return text

    def segments(self, pid: int, words: list[int]) -> tuple[list[list[dict]], bool]:
        """The Python frames of one event (the words after EP_CONTEXT_PYTHON), as runs of
        frames innermost first, one run per C call of the interpreter; and whether the stack
        was longer than the BPF program keeps."""
        target = self.targets.get(pid)
        runs: list[list[dict]] = [[]]
        truncated = words[-1:] == [PY_TRUNCATED]
        pairs = list(zip(words[0:len(words) - 1:2], words[1::2]))
        named = self._resolver.frames(target, [(c, i & ~1) for c, i in pairs if c != PY_ENTRY]) \
            if target is not None else []
        at = 0
        for code, instr in pairs:
            if code == PY_ENTRY:                    # 3.12+: the shim frame of a C call
                runs.append([])
                continue
            frame = named[at] if target is not None else None
            at += 1
            if frame is not None:
                runs[-1].append({"addr": 0, "symbol": frame.qualname, "offset": frame.line or 0,
                                 "kernel": False, "dso": frame.filename or "[unknown]",
                                 "python": True})
            if instr & 1:                           # 3.11: the outermost frame of its C call
                runs.append([])
        return [r for r in runs if r], truncated


# A side record: struct ep_sample (bpf/ep_sample.h), the sample's ip, then the words
_SIDE_HEADER = struct.Struct("<QIIIHHIIQ")
_SIDE_MAX = 1 << 16              # side records kept waiting for their samples
_SIDE_WINDOW_NS = 1_000_000      # a stack is for the sample of its thread and ip this close to it


def merge_python_frames(native_user: list[dict], runs: list[list[dict]], truncated: bool) -> list[dict]:
    """User frames with the Python ones where they ran: each run of Python frames takes the
    place of one ``_PyEval_EvalFrameDefault`` frame, innermost first. Runs left over (the
    native stack could not be unwound that far, or there is none: no -g) go after the last
    one placed; when none could be placed (an interpreter built without frame pointers), after
    the native frames up to the first one the unwinder could not name."""
    out: list[dict] = []
    left = list(runs)
    placed = False
    for frame in native_user:
        if left and frame["symbol"] in _EVAL_FUNCTIONS:
            out.extend(left.pop(0))
            placed = True
            if not left and truncated:
                out.append(TRUNCATED_FRAME)
            continue
        out.append(frame)
    if left:
        rest = [f for run in left for f in run] + ([TRUNCATED_FRAME] if truncated else [])
        if placed:
            last = max(i for i, f in enumerate(out) if f.get("python"))
            out[last + 1:last + 1] = rest
        else:
            # The native frames above are the C code Python called (libc's syscall wrapper);
            # the unwinder's trail ends at the first frame it could not name.
            at = next((i for i, f in enumerate(out) if f["symbol"] == "Unknown"), len(out))
            out[at:at] = rest
    return out


_RUN: tuple[object, "PythonProcesses"] | None = None      # (the run's config, its processes)


def run_python_processes(config) -> PythonProcesses:
    """The run's CPython processes, found once for all its sources (-p/-t, else every process
    running now), and given to the callchain resolver."""
    global _RUN
    from ebpfprof.symbols import default_resolver

    if _RUN is None or _RUN[0] is not config:
        from ebpfprof.options import traced_processes

        processes = PythonProcesses()
        processes.find(traced_processes(config) if config.pids or config.tids else None)
        _RUN = (config, processes)
        default_resolver().python = processes
    return _RUN[1]


def _all_pids() -> list[int]:
    return sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
