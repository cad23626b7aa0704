"""--python-callchain on real events: the Python frames of every event equal the stack the
traced program recorded itself at that call (tests/testprogs/pysleeper.py), on every CPython
3.11-3.13 this machine has.

Each clock_nanosleep of the workload is an event of syscalls:sys_enter_clock_nanosleep (-p);
per thread, the n-th event's Python frames must be the n-th recorded stack: methods
(qualname), a generator, a sorted(key=...) callback, a closure, recursion deeper than the
frame limit (truncated, and marked so), and three threads sleeping with the GIL released.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from runner import Tracer, write_script

ROOT = Path(__file__).resolve().parents[2]
WORKLOAD = ROOT / "tests" / "testprogs" / "pysleeper.py"
MAX_FRAMES = 62          # codegen/program.py PY_MAX_FRAMES
DEPTH = 80               # deeper than that

INTERPRETERS = {
    "debian-3.11": "/usr/bin/python3.11",
    "pyenv-3.11": "/root/.pyenv/versions/3.11.7/bin/python3.11",
    "pyenv-3.12": "/root/.pyenv/versions/3.12.1/bin/python3.12",
    "pyenv-3.13": "/root/.pyenv/versions/3.13.0/bin/python3.13",
}

RECORDER = """
import json
rows = []
def __sample__(event):
    frames = event._callchain           # read at once: the code objects are alive now
    rows.append([event._tid, [[f["symbol"], f["dso"], f["offset"]] for f in frames if f.get("python")],
                 sum(1 for f in frames if not f.get("python") and not f["kernel"])])
def __exit__():
    print("ROWS " + json.dumps(rows), flush=True)
"""


def _interpreter(name: str) -> str:
    path = INTERPRETERS[name]
    if not os.access(path, os.X_OK):
        pytest.skip(f"{path} is not installed here")
    return path


SLEEP = "syscalls:sys_enter_clock_nanosleep"


def _traced(workload: list[str], options: list[str], script: list[str], wait_done: bool) -> Tracer:
    """Run a ready/go workload under ``ebpfprof python OPTIONS -p PID SCRIPT`` to its end; the tracer
    (exited 0). With ``wait_done`` the workload says "done" and exits on the next line."""
    proc = subprocess.Popen(workload, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        ready = proc.stdout.readline().split()
        assert ready and ready[0] == "ready", ready
        tracer = Tracer([*options, "-p", str(proc.pid), *script])
        tracer.wait_attached()
        proc.stdin.write("go\n")
        proc.stdin.flush()
        if wait_done:
            assert proc.stdout.readline().strip() == "done"
            proc.stdin.write("exit\n")
            proc.stdin.flush()
        proc.wait(timeout=30)
        assert tracer.wait(timeout=60) == 0, tracer.stderr
    finally:
        if proc.poll() is None:
            proc.kill()
    return tracer


def _run(python: str, tmp_path: Path, extra: list[str], event: str = SLEEP,
         flag: tuple[str, ...] = ("--python-callchain",)) -> tuple[list, dict, str]:
    out = tmp_path / "calls.json"
    tracer = _traced([python, str(WORKLOAD), str(out), str(DEPTH)],
                     ["-v", "-e", event, *flag, *extra], [str(write_script(tmp_path, RECORDER))], wait_done=True)
    m = re.search(r"^ROWS (.*)$", tracer.stdout, re.M)
    assert m, tracer.stdout + tracer.stderr
    assert re.search(r"\d+ events delivered, 0 lost", tracer.stderr), tracer.stderr
    return json.loads(m.group(1)), json.loads(out.read_text()), tracer.stderr


def _check(rows: list, truth: dict) -> None:
    by_tid: dict[str, list] = {}
    for tid, frames, _native in rows:
        by_tid.setdefault(str(tid), []).append(frames)
    assert sorted(by_tid) == sorted(truth["calls"]), (sorted(by_tid), sorted(truth["calls"]))
    assert len(truth["calls"]) == 4                       # main and three threads
    truncated = 0
    for tid, stacks in truth["calls"].items():
        got = by_tid[tid]
        assert len(got) == len(stacks), (tid, len(got), len(stacks))
        for ours, want in zip(got, stacks):
            if ours and ours[-1][0] == "[truncated]":
                truncated += 1
                ours = ours[:-1]
                assert len(want) > len(ours) >= MAX_FRAMES - 4, (len(ours), len(want))
                want = want[:len(ours)]
            assert ours == want
    assert truncated == 1                                 # deep(DEPTH), once


@pytest.mark.parametrize("name", sorted(INTERPRETERS))
def test_python_frames_equal_the_programs_own_stacks(tmp_path, name):
    rows, truth, stderr = _run(_interpreter(name), tmp_path, [])
    _check(rows, truth)
    assert re.search(r"Python frames for 1 process\(es\): \d+ \(Python 3\.1[123]\.\d+\)", stderr), stderr


@pytest.mark.parametrize("name", ["debian-3.11", "pyenv-3.12"])
def test_with_native_frames_too(tmp_path, name):
    """-g: the Python frames, in the same order, among the native user frames."""
    rows, truth, _ = _run(_interpreter(name), tmp_path, ["-g"])
    _check(rows, truth)
    assert all(native > 0 for _tid, _frames, native in rows)


def test_a_uprobe_and_an_attr(tmp_path):
    """The same from a uprobe on libc's clock_nanosleep; and python-stack as a selector's ATTR."""
    python = _interpreter("pyenv-3.13")
    rows, truth, _ = _run(python, tmp_path, [], event="uprobe:c:clock_nanosleep")
    _check(rows, truth)
    rows, truth, _ = _run(python, tmp_path, [], event="uprobe:c:clock_nanosleep//python-stack/", flag=())
    _check(rows, truth)


def test_a_process_that_is_not_python_gets_no_frames(tmp_path):
    proc = subprocess.Popen(["sleep", "3"])
    try:
        tracer = Tracer(["-v", "-e", "syscalls:sys_enter_clock_nanosleep", "--python-callchain",
                         "-p", str(proc.pid), str(write_script(tmp_path, RECORDER))])
        assert tracer.wait(timeout=60) == 0, tracer.stderr
    finally:
        proc.kill()
    assert f"Python frames for 0 process(es); none for {proc.pid}: " in tracer.stderr, tracer.stderr


def test_the_api_takes_python_frames_too(tmp_path):
    """ebpfprof.trace(..., python_callchain=True): the same frames, in this process."""
    import ebpfprof

    python = _interpreter("pyenv-3.12")
    out = tmp_path / "calls.json"
    proc = subprocess.Popen([python, str(WORKLOAD), str(out), str(DEPTH)], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().split()[0] == "ready"
        rows = []
        with ebpfprof.trace(SLEEP, pids=[proc.pid], python_callchain=True) as events:
            proc.stdin.write("go\n")
            proc.stdin.flush()
            for event in events.take(16, timeout=10):    # 7 calls in the main thread, 3 x 3 in threads
                rows.append([event._tid, [[f["symbol"], f["dso"], f["offset"]]
                                          for f in event._callchain if f.get("python")], 0])
        assert proc.stdout.readline().strip() == "done"
    finally:
        proc.kill()
    _check(rows, json.loads(out.read_text()))


SPIN = ROOT / "tests" / "testprogs" / "pyspin.py"
PROFILER = """
import json
rows = []
def profile(event):
    rows.append([[f["symbol"], f["dso"], f["offset"]] for f in event._callchain if f.get("python")])
def __exit__():
    print("ROWS " + json.dumps(rows), flush=True)
"""


def _function_lines(path: Path) -> dict[str, range]:
    import ast

    tree = ast.parse(path.read_text())
    out = {"<module>": range(1, len(path.read_text().splitlines()) + 1)}
    for node in tree.body:
        if isinstance(node, ast.FunctionDef):
            out[node.name] = range(node.lineno, node.end_lineno + 1)
    return out


@pytest.mark.parametrize("name", sorted(INTERPRETERS))
@pytest.mark.parametrize("g", [[], ["-g"]], ids=["", "g"])
def test_profile_samples_carry_the_python_stack(tmp_path, name, g):
    """profile + --python-callchain is a sampling Python profiler: every sample of the busy
    process has its Python frames (from the sample's BPF program, paired with the sample), a
    tail of <module> -> spin -> mid -> leaf, each line inside its function."""
    python = _interpreter(name)
    tracer = _traced([python, str(SPIN), "1.0"], ["-v", "-e", "profile/-F 199/", "--python-callchain", *g],
                     [str(write_script(tmp_path, PROFILER))], wait_done=False)
    m = re.search(r"^ROWS (.*)$", tracer.stdout, re.M)
    assert m, tracer.stdout + tracer.stderr
    rows = json.loads(m.group(1))
    delivered = re.search(r"(\d+) events delivered, (\d+) lost", tracer.stderr)
    assert delivered and int(delivered.group(2)) == 0 and int(delivered.group(1)) == len(rows), tracer.stderr
    assert len(rows) > 100                       # 199 Hz for about a second, on one CPU
    lines = _function_lines(SPIN)
    full = ["leaf", "mid", "spin", "<module>"]
    # After spin() returns the interpreter finalizes, running no Python code: a sample or two
    # there has no Python frames; no other may lack them
    while rows and not rows[-1]:
        rows.pop()
    # A sample is asynchronous: it may catch a frame being pushed, whose code pointer is not
    # yet its own. Such a frame is [unknown] (checked against the code object: never another
    # name); rare, and nothing else may differ
    torn = [frames for frames in rows if any(f[0] == "[unknown]" for f in frames)]
    assert len(torn) <= max(1, len(rows) // 50), torn
    rows = [frames for frames in rows if frames not in torn]
    for frames in rows:
        names = [f[0] for f in frames]
        assert names and names == full[len(full) - len(names):], frames
        assert all(f[1] == str(SPIN) and f[2] in lines[f[0]] for f in frames), frames
    assert sum(1 for frames in rows if len(frames) == 4) > 0.8 * len(rows)


def test_the_python_flamegraph_tool(tmp_path):
    """tools/python_flamegraph.py on pyspin.py: folded stacks of Python functions, outermost
    first, one sample counted per line's COUNT, every one a head of <module>;spin;mid;leaf."""
    python = _interpreter("pyenv-3.12")
    out = tmp_path / "py.folded"
    tracer = _traced([python, str(SPIN), "1.0"], ["-v", "-e", "profile/-F 99/", "--python-callchain"],
                     [str(ROOT / "tools" / "python_flamegraph.py"), str(out)], wait_done=False)
    delivered = int(re.search(r"(\d+) events delivered, 0 lost", tracer.stderr).group(1))
    lines = out.read_text().splitlines()
    counts = {line.rsplit(" ", 1)[0]: int(line.rsplit(" ", 1)[1]) for line in lines}
    assert sum(counts.values()) == delivered > 50
    full = ["<module> (pyspin.py)", "spin (pyspin.py)", "mid (pyspin.py)", "leaf (pyspin.py)"]
    python_samples = torn = 0
    for stack, n in counts.items():
        comm, *frames = stack.split(";")
        assert comm.startswith("python3")
        if any(f.startswith("[unknown]") for f in frames):     # caught a frame being pushed
            torn += n
            continue
        if frames != ["[native]"]:               # the interpreter's exit, after spin() returned
            assert frames == full[:len(frames)], stack
            python_samples += n
    assert torn <= max(1, delivered // 50) and python_samples >= delivered - 3 - torn
    assert f"{out}: {len(counts)} stacks, {delivered} samples" in tracer.stdout
