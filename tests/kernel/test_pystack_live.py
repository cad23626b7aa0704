"""pystack on live CPython processes (no BPF): for each interpreter on the machine, the
workload (tests/testprogs/pystack_workload.py) stops four threads at known stacks, each
blocked in a read with the GIL released; walking each thread by its tid with the BPF walk's
values (the glibc TLS rule, and the thread list) and resolving the pairs must give exactly the
stack the traceback module recorded in that thread. Stacks are compared innermost first.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ebpfprof.pystack import UNKNOWN, NotPython, PyFrameResolver, bpf_params, python_target
from ebpfprof.pystack.walker import thread_state, walk_thread

WORKLOAD = Path(__file__).parent.parent / "testprogs" / "pystack_workload.py"
INTERPRETERS = {
    "debian-3.11": "/usr/bin/python3.11",
    "pyenv-3.11.7": "/root/.pyenv/versions/3.11.7/bin/python3.11",
    "pyenv-3.12.1": "/root/.pyenv/versions/3.12.1/bin/python3.12",
    "pyenv-3.13.0": "/root/.pyenv/versions/3.13.0/bin/python3.13",
}
PY_SPY = Path(sys.executable).parent / "py-spy"
_READ_SYSCALL = 0                     # x86-64


class Workload:
    def __init__(self, proc: subprocess.Popen, stacks: dict[int, list], version: str) -> None:
        self.proc, self.pid, self.stacks, self.version = proc, proc.pid, stacks, version


def _blocked_in_read(pid: int, tid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/task/{tid}/syscall").read_text().split()[0] == str(_READ_SYSCALL)
    except (OSError, IndexError):
        return False


def start_workload(python: str, tmp_path: Path) -> Workload:
    out = tmp_path / "stacks.json"
    proc = subprocess.Popen([python, str(WORKLOAD), str(out)], stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"workload exited {proc.returncode}: {proc.stderr.read().decode()}")
        if out.exists():
            data = json.loads(out.read_text())
            stacks = {int(tid): [tuple(f) for f in s] for tid, s in data["threads"].items()}
            if all(_blocked_in_read(proc.pid, tid) for tid in stacks):
                return Workload(proc, stacks, data["version"])
        time.sleep(0.02)
    proc.kill()
    raise AssertionError("workload did not reach its checkpoints in 30 s")


@pytest.fixture(params=sorted(INTERPRETERS))
def workload(request, tmp_path):
    python = INTERPRETERS[request.param]
    if not Path(python).exists():
        pytest.skip(f"{request.param}: no {python}")
    w = start_workload(python, tmp_path)
    yield w
    w.proc.kill()
    w.proc.wait()


def _frames(resolver, target, pairs):
    return [(f.qualname, f.filename, f.line) for f in resolver.resolve(target, pairs)]


def test_each_thread_walks_to_its_traceback(workload):
    target = python_target(workload.pid)
    assert target, target.reason
    assert target.version == workload.version
    assert target.layout.source == ("_Py_DebugOffsets" if target.layout.version >= (3, 13) else "table")
    resolver = PyFrameResolver()
    assert len(workload.stacks) == 4
    for tid, want in workload.stacks.items():
        assert _frames(resolver, target, walk_thread(target, tid, via="tls")) == want, f"thread {tid}"
    # the sorted(key=...) callback and the generator are in the main thread's stack
    main = [q for q, _f, _l in workload.stacks[workload.pid]]
    assert {"Walker.key", "Walker.numbers", "recurse.<locals>.inner.<locals>.<lambda>"} <= set(main)


def test_tls_rule_and_thread_list_agree(workload):
    target = python_target(workload.pid)
    by_tls = {tid: thread_state(target, tid, via="tls") for tid in workload.stacks}
    by_list = {tid: thread_state(target, tid, via="threads") for tid in workload.stacks}
    assert by_tls == by_list
    assert 0 not in by_tls.values() and len(set(by_tls.values())) == 4
    for tid in workload.stacks:
        assert walk_thread(target, tid, via="tls") == walk_thread(target, tid, via="threads")
    if target.layout.version == (3, 11):
        # the GIL holder, which tools often take for "the current thread": nobody, all four are in read()
        assert target.memory.u64(target.runtime_addr + 576) == 0         # gilstate.tstate_current


def _entries(target, tid) -> list[str]:
    """Qualnames of the frames a C call entered the interpreter with (3.11: is_entry set; 3.12+:
    the frame right after a shim frame), read with bpf_params' values; "SHIM" for the shims."""
    p, mem, resolver = bpf_params(target), target.memory, PyFrameResolver()
    frame = mem.u64(thread_state(target, tid) + p["tstate_frame_off"])
    if p["cframe_frame_off"] >= 0:
        frame = mem.u64(frame + p["cframe_frame_off"])
    names: list[str] = []
    while frame:
        if p["frame_owner_skip"] >= 0 and mem.u8(frame + p["frame_owner_off"]) == p["frame_owner_skip"]:
            names.append("SHIM")
        else:
            f = resolver.frame(target, mem.u64(frame + p["frame_code_off"]), mem.u64(frame + p["frame_instr_off"]))
            names.append(f.qualname)
            if p["frame_is_entry_off"] >= 0 and mem.u8(frame + p["frame_is_entry_off"]):
                names.append("ENTRY")
        frame = mem.u64(frame + p["frame_previous_off"])
    marker = "ENTRY" if p["frame_is_entry_off"] >= 0 else "SHIM"
    return [names[i - 1] for i, n in enumerate(names) if n == marker]


def test_c_call_boundaries(workload):
    """frame_owner_skip/frame_owner_off (3.12+) and frame_is_entry_off (3.11) mark where C called
    Python: sorted() calling the key function, and the interpreter running the module."""
    target = python_target(workload.pid)
    main = _entries(target, workload.pid)
    assert "Walker.key" in main and main[-1] == "<module>", main
    for tid in workload.stacks:
        assert _entries(target, tid)[-1] in ("<module>", "Thread._bootstrap")


def test_dead_process_resolves_from_cache_or_unknown(workload):
    target = python_target(workload.pid)
    resolver = PyFrameResolver()
    pairs = walk_thread(target, workload.pid)
    before = _frames(resolver, target, pairs)
    other = walk_thread(target, next(t for t in workload.stacks if t != workload.pid))
    unseen = [p for p in other if p[0] not in {c for c, _ in pairs}]
    assert unseen
    workload.proc.kill()
    workload.proc.wait()
    assert _frames(resolver, target, pairs) == before                    # seen before: from the cache
    assert resolver.resolve(target, unseen) == [UNKNOWN] * len(unseen)    # never seen: a marker
    assert PyFrameResolver().resolve(target, pairs) == [UNKNOWN] * len(pairs)


def test_pyspy_agrees(workload):
    if not PY_SPY.exists():
        pytest.skip(f"py-spy not installed ({PY_SPY}): pip install py-spy")
    target = python_target(workload.pid)
    dump = subprocess.run([str(PY_SPY), "dump", "--json", "--pid", str(workload.pid)],
                          capture_output=True, text=True, timeout=60)
    assert dump.returncode == 0, dump.stderr
    theirs = {t["os_thread_id"]: [(f["name"], f["filename"], f["line"]) for f in t["frames"]]
              for t in json.loads(dump.stdout)}
    resolver = PyFrameResolver()
    ours = {tid: _frames(resolver, target, walk_thread(target, tid)) for tid in workload.stacks}
    assert ours == theirs


def test_not_python_processes():
    sleep = subprocess.Popen(["/bin/sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while Path(f"/proc/{sleep.pid}/exe").resolve() != Path("/bin/sleep").resolve():
            assert time.monotonic() < deadline
            time.sleep(0.01)
        got = python_target(sleep.pid)
        assert isinstance(got, NotPython) and not got
        assert "not CPython" in got.reason and "\n" not in got.reason
    finally:
        sleep.kill()
        sleep.wait()
    gone = python_target(sleep.pid)
    assert not gone and "/proc/" in gone.reason


def test_python_before_3_11_is_refused(tmp_path):
    python = "/root/.pyenv/versions/3.10.13/bin/python3.10"
    if not Path(python).exists():
        pytest.skip(f"no {python}")
    # ready once it has printed; then it blocks reading the pipe we hold open
    proc = subprocess.Popen([python, "-c", "import sys; print('ready', flush=True); sys.stdin.read()"],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline() == b"ready\n"
        got = python_target(proc.pid)
        assert not got and "older than 3.11" in got.reason, got
    finally:
        proc.kill()
        proc.wait()
