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

import os

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
        for i in range(0, len(words) - 1, 2):
            code, instr = words[i], words[i + 1]
            if code == PY_ENTRY:                    # 3.12+: the shim frame of a C call
                runs.append([])
                continue
            if target is not None:
                frame = self._resolver.frame(target, code, instr & ~1)
                if frame is not None:
                    runs[-1].append({"addr": 0, "symbol": frame.qualname, "offset": frame.line or 0,
                                     "kernel": False, "dso": frame.filename or "[unknown]",
                                     "python": True})
            if instr & 1:                           # 3.11: the outermost frame of its C call
                runs.append([])
        return [r for r in runs if r], truncated


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


def _all_pids() -> list[int]:
    return sorted(int(d) for d in os.listdir("/proc") if d.isdigit())
