"""MODULE in all its forms (SPEC §1) on live events: a Cython extension, a module name found from the
cwd, a script named like a stdlib module, sys.argv with and without ``--``, options after MODULE,
and a script run directly through its shebang line.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from runner import COUNTER, ROOT, Tracer, Workload, parse_counts, trace_workload, write_script

EVENT = "syscalls:sys_enter_getppid"

# COUNTER, plus what the script saw of its own start.
ARGV_COUNTER = COUNTER + '''
import sys
print("ARGV", sys.argv)
print("PATH0", sys.path[0])
print("FILE", __file__)
'''


def traced_run(tmp_path: Path, workload_bin: Path, calls: int, args: list[str], cwd: Path | None = None) -> Tracer:
    """Run ebpfprof with ARGS on a workload making CALLS getppid() calls (-p is added)."""
    wl = Workload(workload_bin, "getppid", str(calls))
    tracer = trace_workload(wl, ["-e", EVENT, "-p", str(wl.pid), *args], cwd=cwd or tmp_path)
    return tracer


def test_cython_module_receives_events(tmp_path, workload_bin):
    cythonize = Path(sys.executable).parent / "cythonize"
    if not cythonize.exists():
        pytest.skip(f"Cython is not installed in this environment ({cythonize} is missing)")
    (tmp_path / "cyhandlers.pyx").write_text('''
counts = {}
fields = set()

def syscalls__sys_enter_getppid(event):
    counts[event._event] = counts.get(event._event, 0) + 1
    fields.add((event._pid == event.common_pid, event.__syscall_nr))

def __exit__():
    for k, v in sorted(counts.items()):
        print(f"COUNT {k} {v}")
    print("FIELDS", sorted(fields))
    print("COMPILED", __file__)
''')
    build = subprocess.run([str(cythonize), "-i", "-q", "cyhandlers.pyx"], cwd=tmp_path, capture_output=True,
                           text=True, timeout=120)
    assert build.returncode == 0, build.stdout + build.stderr
    (tmp_path / "cyhandlers.pyx").unlink()        # only the compiled module is left to import
    so = [p for p in tmp_path.glob("cyhandlers.*.so")]
    assert len(so) == 1, list(tmp_path.iterdir())
    assert so[0].name.startswith("cyhandlers.cpython-") and so[0].name.endswith(".so")

    tracer = traced_run(tmp_path, workload_bin, 250, [str(so[0])])
    assert parse_counts(tracer.stdout) == {EVENT: 250}, tracer.stdout + tracer.stderr
    assert "FIELDS [(True, 110)]" in tracer.stdout              # getppid is syscall 110 on x86_64
    assert f"COMPILED {so[0]}" in tracer.stdout


def test_module_name_found_from_the_cwd(tmp_path, workload_bin):
    write_script(tmp_path, ARGV_COUNTER, "cwd_counter_mod.py")
    tracer = traced_run(tmp_path, workload_bin, 40, ["cwd_counter_mod", "x"], cwd=tmp_path)
    assert parse_counts(tracer.stdout) == {EVENT: 40}
    assert "ARGV ['cwd_counter_mod', 'x']" in tracer.stdout
    assert f"FILE {tmp_path / 'cwd_counter_mod.py'}" in tracer.stdout


def test_relative_script_path(tmp_path, workload_bin):
    (tmp_path / "sub").mkdir()
    write_script(tmp_path / "sub", ARGV_COUNTER)
    tracer = traced_run(tmp_path, workload_bin, 15, ["sub/script.py", "x"], cwd=tmp_path)
    assert parse_counts(tracer.stdout) == {EVENT: 15}
    assert "ARGV ['sub/script.py', 'x']" in tracer.stdout
    assert f"PATH0 {tmp_path / 'sub'}" in tracer.stdout


def test_script_named_like_a_stdlib_module(tmp_path, workload_bin):
    script = write_script(tmp_path, ARGV_COUNTER + '''
import stat as stdlib_stat
print("STDLIB_STAT", hasattr(stdlib_stat, "S_ISDIR"), stdlib_stat.__file__ != __file__)
''', "stat.py")
    tracer = traced_run(tmp_path, workload_bin, 30, [str(script)])
    assert parse_counts(tracer.stdout) == {EVENT: 30}
    assert f"FILE {script}" in tracer.stdout
    assert "STDLIB_STAT True True" in tracer.stdout       # and `import stat` is still the stdlib's


@pytest.mark.parametrize("args, args_seen", [
    (["--", "{script}", "a", "b"], ["a", "b"]),
    (["{script}", "a", "b"], ["a", "b"]),
    (["--", "{script}", "-N", "5", "--flag"], ["-N", "5", "--flag"]),
    (["{script}"], []),
])
def test_sys_argv(tmp_path, workload_bin, args, args_seen):
    script = write_script(tmp_path, ARGV_COUNTER)
    tracer = traced_run(tmp_path, workload_bin, 20, [a.format(script=script) for a in args])
    assert f"ARGV {[str(script), *args_seen]!r}" in tracer.stdout
    assert f"PATH0 {tmp_path}" in tracer.stdout
    # `-N 5` after `--` was the script's: every event was still delivered
    assert parse_counts(tracer.stdout) == {EVENT: 20}


def test_options_after_module_are_ebpfprofs(tmp_path, workload_bin):
    script = write_script(tmp_path, ARGV_COUNTER)
    tracer = traced_run(tmp_path, workload_bin, 1000, [str(script), "-N", "5", "arg"])
    assert parse_counts(tracer.stdout) == {EVENT: 5}
    assert f"ARGV {[str(script), 'arg']!r}" in tracer.stdout


def _ebpfprof_bin() -> Path:
    path = Path(sys.executable).parent / "ebpfprof"
    if not path.exists():
        path = ROOT / ".venv" / "bin" / "ebpfprof"
    if not path.exists():
        pytest.skip("no installed ebpfprof command next to this interpreter or in .venv/bin")
    return path


@pytest.mark.parametrize("name", ["shebang_counter.py", "shebang_counter"])
def test_shebang_script_runs_directly(tmp_path, workload_bin, name):
    script = tmp_path / name
    script.write_text(f"#!/usr/bin/env -S {_ebpfprof_bin()} python -e {EVENT} -N 3\n" + ARGV_COUNTER)
    script.chmod(0o755)
    spinner = subprocess.Popen([str(workload_bin), "spin", "20000"], stdout=subprocess.DEVNULL)
    try:
        proc = subprocess.run([str(script), "first", "second"], capture_output=True, text=True, timeout=60,
                              cwd=tmp_path)
    finally:
        spinner.kill()
        spinner.wait()
    assert proc.returncode == 0, proc.stderr
    assert parse_counts(proc.stdout) == {EVENT: 3}, proc.stdout + proc.stderr
    assert f"ARGV [{str(script)!r}, 'first', 'second']" in proc.stdout
    assert "ebpfprof: error" not in proc.stderr


def test_script_loads_in_its_own_working_directory(tmp_path, workload_bin):
    write_script(tmp_path, ARGV_COUNTER + '''
import os, time
CWDS = set()
_t = time.monotonic()
while time.monotonic() - _t < 1.5:      # long enough to overlap whatever ebpfprof does meanwhile
    CWDS.add(os.getcwd())
print("CWDS", sorted(CWDS))
''')
    tracer = traced_run(tmp_path, workload_bin, 5, [str(tmp_path / "script.py")])
    assert parse_counts(tracer.stdout) == {EVENT: 5}
    assert f"CWDS {[str(tmp_path)]!r}" in tracer.stdout, tracer.stdout
