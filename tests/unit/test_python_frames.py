"""symbols/python.py without a kernel: where Python frames go in a callchain, and how the words
bpf/python_stack.h writes are read back (a stand-in resolver names the code objects)."""
from __future__ import annotations

from ebpfprof.symbols.python import (PY_ENTRY, PY_TRUNCATED, TRUNCATED_FRAME, PythonProcesses,
                                     merge_python_frames)


def native(symbol: str) -> dict:
    return {"addr": 0x1000, "symbol": symbol, "offset": 0, "kernel": False, "dso": "libpython"}


def py(name: str) -> dict:
    return {"addr": 0, "symbol": name, "offset": 1, "kernel": False, "dso": "x.py", "python": True}


def names(frames: list[dict]) -> list[str]:
    return [f["symbol"] for f in frames]


def test_each_run_takes_the_place_of_an_eval_frame():
    user = [native("__clock_nanosleep"), native("_PyEval_EvalFrameDefault"), native("PyObject_Call"),
            native("_PyEval_EvalFrameDefault"), native("main")]
    out = merge_python_frames(user, [[py("tick"), py("key")], [py("run"), py("<module>")]], False)
    assert names(out) == ["__clock_nanosleep", "tick", "key", "PyObject_Call", "run", "<module>", "main"]


def test_runs_left_over_follow_the_last_placed_and_truncation_is_last():
    user = [native("_PyEval_EvalFrameDefault"), native("main")]
    out = merge_python_frames(user, [[py("a")], [py("b")]], True)
    assert names(out) == ["a", "b", "[truncated]", "main"]


def test_without_eval_frames_they_go_where_the_unwinder_lost_its_way():
    user = [native("__clock_nanosleep"), native("Unknown"), native("Unknown")]
    out = merge_python_frames(user, [[py("tick"), py("<module>")]], False)
    assert names(out) == ["__clock_nanosleep", "tick", "<module>", "Unknown", "Unknown"]
    assert names(merge_python_frames([], [[py("tick")]], True)) == ["tick", TRUNCATED_FRAME["symbol"]]


class Named:
    """Stands in for PyFrameResolver: code address N is function fN at line instr."""

    def frame(self, target, code, instr):
        from ebpfprof.pystack import PyFrame
        return None if code == 0 else PyFrame(f"f{code}", "x.py", instr)

    def frames(self, target, pairs):
        return [self.frame(target, code, instr) for code, instr in pairs]


def test_words_are_read_as_the_bpf_program_writes_them():
    procs = PythonProcesses.__new__(PythonProcesses)
    procs.targets, procs.skipped, procs._resolver = {7: object()}, {}, Named()
    # 3.12+: a shim frame (ENTRY, ENTRY) between two C calls; 3.11: bit 0 on the outermost frame
    runs, truncated = procs.segments(7, [1, 10, 2, 20, PY_ENTRY, PY_ENTRY, 3, 31, 4, 40, PY_TRUNCATED])
    assert [[(f["symbol"], f["offset"]) for f in r] for r in runs] == [[("f1", 10), ("f2", 20)],
                                                                     [("f3", 30)], [("f4", 40)]]
    assert truncated
    runs, truncated = procs.segments(7, [0, 8, 5, 50])       # None's frame (3.13's entry): skipped
    assert [[f["symbol"] for f in r] for r in runs] == [["f5"]] and not truncated
