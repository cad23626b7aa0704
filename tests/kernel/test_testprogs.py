"""The test programs for the perf_event_open sources (faults, busy, bpwrite): their -w handshake,
their output, and — checked against the kernel's own counters, with no perf tool — that what they
promise is exact: faults takes exactly one minor fault per page (per thread, /proc/.../stat), busy
burns its CPU in user space or in the kernel, bpwrite's address is its bp_target's.

These need no root and no BPF; they sit with the kernel tests because those are their users.
"""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest

from runner import build_testprog

PAGESIZE = os.sysconf("SC_PAGESIZE")
CLK_TCK = os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def faults_bin() -> Path:
    return build_testprog("faults")


@pytest.fixture(scope="module")
def busy_bin() -> Path:
    return build_testprog("busy")


@pytest.fixture(scope="module")
def bpwrite_bin() -> Path:
    return build_testprog("bpwrite")


class Prog:
    """A test program started with -w: the ready line's fields, go(), finish()."""

    def __init__(self, binary: Path, *args: str) -> None:
        self.proc = subprocess.Popen([str(binary), "-w", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        self.ready = self.proc.stdout.readline().split()
        assert self.ready and self.ready[0] == "ready", f"{binary.name} did not start: {self.ready}"
        self.pid = int(self.ready[1])

    def go(self) -> list[str]:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().split()

    def finish(self) -> int:
        self.proc.stdin.write("exit\n")
        self.proc.stdin.flush()
        rest = self.proc.stdout.read()
        assert rest == "", f"output after done: {rest!r}"
        return self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> "Prog":
        return self

    def __exit__(self, *exc) -> None:
        self.kill()


def stat_fields(path: str) -> list[str]:
    """/proc/.../stat's fields from field 3 (state) on: index i is field i + 3."""
    text = Path(path).read_text()
    return text[text.rindex(")") + 2:].split()


def minflt(path: str) -> int:
    return int(stat_fields(path)[10 - 3])


def cpu_ticks(pid: int) -> tuple[int, int]:
    fields = stat_fields(f"/proc/{pid}/stat")
    return int(fields[14 - 3]), int(fields[15 - 3])           # utime, stime


def maps(pid: int) -> list[tuple[int, int, str, int, str]]:
    """(start, end, perms, offset, path) of each mapping."""
    out = []
    for line in Path(f"/proc/{pid}/maps").read_text().splitlines():
        parts = line.split(maxsplit=5)
        start, end = (int(x, 16) for x in parts[0].split("-"))
        out.append((start, end, parts[1], int(parts[2], 16), parts[5] if len(parts) > 5 else ""))
    return out


def vmflags(pid: int, addr: int) -> list[str]:
    """The VmFlags of the mapping holding ADDR, from /proc/PID/smaps."""
    inside = False
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(x, 16) for x in head.split("-"))
            inside = start <= addr < end
        elif inside and head == "VmFlags:":
            return line.split()[1:]
    raise AssertionError(f"no mapping holds {addr:#x}")


def nm_symbols(binary: Path) -> dict[str, tuple[int, str]]:
    out = subprocess.run(["nm", str(binary)], capture_output=True, text=True, check=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3:
            syms[parts[2]] = (int(parts[0], 16), parts[1])
    return syms


def load_bias(pid: int, binary: Path) -> int:
    """What the kernel added to the binary's link-time addresses: 0 unless it is PIE (ET_DYN)."""
    e_type = int.from_bytes(binary.read_bytes()[16:18], "little")
    if e_type != 3:
        return 0
    real = os.path.realpath(binary)
    return min(start - off for start, _, _, off, path in maps(pid) if path == real and off == 0)


def shares(pages: int, threads: int) -> list[int]:
    """faults.c's partition: worker i touches pages [i*P/T, (i+1)*P/T)."""
    return [(i + 1) * pages // threads - i * pages // threads for i in range(threads)]


# --- faults ---------------------------------------------------------------------------------

def test_faults_handshake_and_output(faults_bin):
    with Prog(faults_bin, "-p", "100", "-t", "2") as prog:
        assert len(prog.ready) == 5, prog.ready
        assert prog.pid == prog.proc.pid
        start, end = int(prog.ready[2], 16), int(prog.ready[3], 16)
        assert prog.ready[2].startswith("0x") and prog.ready[3].startswith("0x")
        assert start % PAGESIZE == 0 and end - start == 100 * PAGESIZE
        tids = [int(t) for t in prog.ready[4].split(",")]
        assert len(set(tids)) == 2 and prog.pid not in tids
        assert set(tids) | {prog.pid} == {int(t) for t in os.listdir(f"/proc/{prog.pid}/task")}
        # The region: private, anonymous, read-write (neighbours of the same kind may merge in).
        assert any(s <= start and end <= e and perms == "rw-p" and path == ""
                   for s, e, perms, _, path in maps(prog.pid)), maps(prog.pid)
        assert "nh" in vmflags(prog.pid, start)              # MADV_NOHUGEPAGE
        assert prog.go() == ["done", "100"]
        assert prog.finish() == 0


def test_faults_without_w_runs_at_once(faults_bin):
    proc = subprocess.run([str(faults_bin), "-p", "10", "-t", "3"], capture_output=True, text=True,
                          timeout=10)
    assert (proc.returncode, proc.stdout, proc.stderr) == (0, "done 10\n", "")


@pytest.mark.parametrize("args", [[], ["-p", "0"], ["-p", "10", "-t", "0"], ["-p", "10", "-x"],
                                  ["-p", "10", "extra"]])
def test_faults_usage(faults_bin, args):
    proc = subprocess.run([str(faults_bin), *args], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and proc.stdout == "" and "usage: faults" in proc.stderr


@pytest.mark.parametrize("pages,threads", [(100, 1), (100, 2), (1, 1), (7, 3), (1000, 4), (3, 5)])
def test_faults_minflt_is_exact(faults_bin, pages, threads):
    """20 runs in a row: between ready and done the process's minflt grows by exactly PAGES,
    each worker's by exactly its share, the main thread's by 0."""
    want = (pages, 0, *shares(pages, threads))
    seen = []
    for _ in range(20):
        with Prog(faults_bin, "-p", str(pages), "-t", str(threads)) as prog:
            tids = [int(t) for t in prog.ready[4].split(",")]
            paths = [f"/proc/{prog.pid}/stat", f"/proc/{prog.pid}/task/{prog.pid}/stat",
                     *(f"/proc/{prog.pid}/task/{tid}/stat" for tid in tids)]
            before = [minflt(p) for p in paths]
            assert prog.go() == ["done", str(pages)]
            after = [minflt(p) for p in paths]
            assert prog.finish() == 0
        seen.append(tuple(a - b for a, b in zip(after, before)))
    assert seen == [want] * 20


# --- busy -----------------------------------------------------------------------------------

def busy_run(busy_bin, *args: str) -> tuple[Prog, list[str], float, tuple[int, int]]:
    with Prog(busy_bin, "-s", "0.5", *args) as prog:
        cpu0 = cpu_ticks(prog.pid)
        t0 = time.monotonic()
        done = prog.go()
        wall = time.monotonic() - t0
        cpu1 = cpu_ticks(prog.pid)
        assert prog.finish() == 0
    return prog, done, wall, (cpu1[0] - cpu0[0], cpu1[1] - cpu0[1])


def test_busy_addresses_are_its_functions(busy_bin):
    syms = nm_symbols(busy_bin)
    assert syms["busy_loop"][1] == "T" and syms["syscall_loop"][1] == "T"
    with Prog(busy_bin, "-s", "0") as prog:
        assert len(prog.ready) == 4, prog.ready
        bias = load_bias(prog.pid, busy_bin)
        assert int(prog.ready[2], 16) == bias + syms["busy_loop"][0]
        assert int(prog.ready[3], 16) == bias + syms["syscall_loop"][0]
        done = prog.go()
        assert prog.finish() == 0
    assert done[0] == "done" and int(done[1]) == 4096     # one round of the loop, then the clock


def test_busy_spins_in_user_space(busy_bin):
    _, done, wall, (utime, stime) = busy_run(busy_bin)
    assert len(done) == 2 and done[0] == "done" and int(done[1]) > 0 and int(done[1]) % 4096 == 0
    assert 0.5 <= wall < 3
    assert utime + stime >= 0.05 * CLK_TCK, (utime, stime)     # spinning, not sleeping (even shared)
    assert stime * 5 <= utime, (utime, stime)


def test_busy_k_spins_in_the_kernel(busy_bin):
    _, done, wall, (utime, stime) = busy_run(busy_bin, "-k")
    assert len(done) == 2 and done[0] == "done" and int(done[1]) > 0 and int(done[1]) % 256 == 0
    assert 0.5 <= wall < 3
    assert utime + stime >= 0.05 * CLK_TCK, (utime, stime)     # spinning, not sleeping (even shared)
    assert stime > utime, (utime, stime)


def test_busy_usage(busy_bin):
    proc = subprocess.run([str(busy_bin), "-w"], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and "usage: busy" in proc.stderr


# --- bpwrite --------------------------------------------------------------------------------

def test_bpwrite_symbols(bpwrite_bin):
    syms = nm_symbols(bpwrite_bin)
    assert syms["bp_target"][1] in "BD" and syms["bp_other"][1] in "BD"   # global data
    assert syms["bp_target"][0] % 64 == 0 and syms["bp_other"][0] % 64 == 0
    assert abs(syms["bp_target"][0] - syms["bp_other"][0]) >= 64


@pytest.mark.parametrize("n", [0, 1, 1000])
def test_bpwrite_handshake_and_address(bpwrite_bin, n):
    syms = nm_symbols(bpwrite_bin)
    with Prog(bpwrite_bin, "-n", str(n)) as prog:
        assert len(prog.ready) == 4, prog.ready
        addr, other = int(prog.ready[2], 16), int(prog.ready[3], 16)
        assert prog.ready[2].startswith("0x")
        bias = load_bias(prog.pid, bpwrite_bin)
        assert addr == bias + syms["bp_target"][0]
        assert other == bias + syms["bp_other"][0]
        real = os.path.realpath(bpwrite_bin)
        # In a writable mapping of the binary itself (its .data/.bss page), 8 bytes of it.
        assert any(s <= addr and addr + 8 <= e and perms[1] == "w" and path == real
                   for s, e, perms, _, path in maps(prog.pid)), maps(prog.pid)
        assert prog.go() == ["done", str(n)]
        assert prog.finish() == 0


def test_bpwrite_usage(bpwrite_bin):
    proc = subprocess.run([str(bpwrite_bin), "-n"], capture_output=True, text=True, timeout=10)
    assert proc.returncode == 2 and "usage: bpwrite" in proc.stderr
