"""Run ebpfprof and workloads the way kernel tests need: attached first, then the events."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTPROGS = ROOT / "tests" / "testprogs"
BIN = TESTPROGS / "bin"


def build_testprog(name: str) -> Path:
    """Compile tests/testprogs/NAME.c into tests/testprogs/bin/NAME (when out of date)."""
    src = TESTPROGS / f"{name}.c"
    out = BIN / name
    if not out.exists() or out.stat().st_mtime < src.stat().st_mtime:
        BIN.mkdir(exist_ok=True)
        subprocess.run(["gcc", "-O0", "-g", "-fno-omit-frame-pointer", "-Wall", "-o", str(out), str(src)],
                       check=True)
    return out


def ebpfprof_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "ebpfprof", *args]


class Workload:
    """tests/testprogs/workload started with -w: it waits for go() before and after its calls."""

    def __init__(self, binary: Path, *args: str) -> None:
        self.proc = subprocess.Popen([str(binary), "-w", *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline().split()
        assert line and line[0] == "ready", f"workload did not start: {line}"
        self.pid = int(line[1])
        self.result: list[str] = []

    def go(self) -> list[str]:
        """Run the calls; returns the "done N secs rate" line's fields."""
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        self.result = self.proc.stdout.readline().split()
        return self.result

    def finish(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("exit\n")
                self.proc.stdin.flush()
            except BrokenPipeError:
                pass
        self.proc.wait(timeout=10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Tracer:
    """An `ebpfprof python` run in the background; started() returns once it is attached."""

    def __init__(self, args: list[str], cwd: Path | None = None, env: dict | None = None) -> None:
        self.args = args
        self.proc = subprocess.Popen(ebpfprof_cmd("python", "-v", *args), stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, cwd=cwd,
                                     env={**os.environ, **(env or {})})
        self.stderr_lines: list[str] = []
        self._attached = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.stdout = ""

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_lines.append(line)
            if "attached" in line:
                self._attached.set()
        self._attached.set()

    def wait_attached(self, timeout: float = 30) -> None:
        assert self._attached.wait(timeout), "ebpfprof did not attach in time:\n" + self.stderr
        assert self.proc.poll() is None, f"ebpfprof exited early ({self.proc.returncode}):\n{self.stderr}"

    def signal(self, sig: int = signal.SIGINT) -> None:
        self.proc.send_signal(sig)

    def wait(self, timeout: float = 30) -> int:
        # stderr belongs to the reader thread: read only stdout here (communicate() would
        # steal stderr lines from it).
        timer = threading.Timer(timeout, self.proc.kill)
        timer.start()
        try:
            self.stdout = self.proc.stdout.read()
            self.proc.wait()
        finally:
            timed_out = not timer.is_alive()
            timer.cancel()
        self._reader.join(5)
        if timed_out:
            raise AssertionError("ebpfprof did not exit in time:\n" + self.stderr)
        return self.proc.returncode

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)


def workload_under(proc: subprocess.Popen, wl: Workload, ready, timeout: float = 30) -> tuple[str, str]:
    """``ready()`` (returns once ``proc`` records), then the workload's calls to their end;
    ``proc``'s (stdout, stderr). Whatever happens, neither process is left running."""
    try:
        ready()
        wl.go()
        wl.finish()
        return proc.communicate(timeout=timeout)
    finally:
        wl.kill()
        if proc.poll() is None:
            proc.kill()


def run_ebpfprof(*args: str, timeout: float = 60, cwd: Path | None = None,
                 env: dict | None = None, input: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(ebpfprof_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env={**os.environ, **(env or {})}, input=input)


def write_script(tmp_path: Path, text: str, name: str = "script.py") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# The script most tests use: counts events per handler name and prints the counts at exit.
COUNTER = '''
from collections import Counter
counts = Counter()
def __sample__(event):
    counts[event._event] += 1
def __exit__():
    for k, v in sorted(counts.items()):
        print(f"COUNT {k} {v}")
'''


def parse_counts(stdout: str) -> dict[str, int]:
    out = {}
    for line in stdout.splitlines():
        if line.startswith("COUNT "):
            _, name, n = line.split()
            out[name] = int(n)
    return out


def trace_workload(workload: Workload, args: list[str], *, cwd: Path | None = None,
                   env: dict | None = None) -> Tracer:
    """The usual run: attach ebpfprof (ARGS; the caller puts -p in them), let the workload make
    its calls and exit, wait for ebpfprof to end by itself (exit 0 expected)."""
    tracer = Tracer(args, cwd=cwd, env=env)
    try:
        tracer.wait_attached()
        assert workload.go()[0] == "done"
        workload.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        workload.kill()
        if tracer.proc.poll() is None:
            tracer.proc.kill()
    return tracer
