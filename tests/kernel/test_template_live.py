"""`help` (SPEC §6) end to end: the printed template, saved and run unchanged on live events, works.

Also here: a __data_loc event whose payload fills the 4 KB the BPF side keeps, with a callchain,
still decodes (the template's sched_process_exec handler is the natural user of that event).
"""
from __future__ import annotations

import re
import shlex
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ebpfprof.kernel.tracefs import tracefs_root
from runner import Tracer, Workload, run_ebpfprof, write_script


def template_for(events: str, *options: str) -> str:
    proc = run_ebpfprof("python", "-e", events, *options, "help", timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    compile(proc.stdout, "template.py", "exec")
    return proc.stdout


def run_line(template: str) -> list[str]:
    """The command of the template's "Run it with" line, without THIS_FILE.py."""
    line = next(l for l in template.splitlines() if l.startswith("#   ebpfprof python "))
    argv = shlex.split(line[len("#   "):])
    assert argv[0] == "ebpfprof" and argv[-1] == "THIS_FILE.py"
    return argv[1:-1]


def counts_printed(stdout: str) -> dict[str, int]:
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+): (\d+) events$", stdout, re.M)}


def test_template_with_aliases_runs_unchanged(tmp_path, workload_bin):
    events = ("syscalls:sys_enter_getppid//alias=gp/,syscalls:sys_enter_getppid//alias=gp2/,"
              "syscalls:sys_exit_getppid")
    template = template_for(events, "-i", "100")
    assert "\ndef syscalls__gp(event):\n" in template and "\ndef syscalls__gp2(event):\n" in template
    assert "\ndef syscalls__sys_exit_getppid(event):\n" in template
    script = write_script(tmp_path, template, "generated.py")

    argv = run_line(template)
    assert argv == ["python", "-e", events, "-i", "100"]
    wl = Workload(workload_bin, "getppid", "321")
    tracer = Tracer([*argv[1:], "-p", str(wl.pid), str(script)])
    try:
        tracer.wait_attached()
        wl.go()
        time.sleep(0.25)                 # a few -i 100 intervals with the events counted
        wl.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    assert counts_printed(tracer.stdout) == {"syscalls:gp": 321, "syscalls:gp2": 321,
                                             "syscalls:sys_exit_getppid": 321}, tracer.stdout
    assert tracer.stdout.startswith(f"Loaded module: {script}\ntracing {events} ... Ctrl-C to stop\n")
    assert re.search(r"^interval \d+: \d+ events so far$", tracer.stdout, re.M), tracer.stdout
    assert "Traceback" not in tracer.stderr


def test_template_with_a_data_loc_event_runs_unchanged(tmp_path, workload_bin):
    events = "sched:sched_process_exec,syscalls:sys_enter_kill//alias=k/"
    template = template_for(events)
    assert re.search(r"^ {8}filename +: str +# __data_loc char\[\]$", template, re.M), template
    assert re.search(r"^ {8}sig +: int +# int$", template, re.M), template
    script = write_script(tmp_path, template, "generated.py")

    tracer = Tracer([*run_line(template)[1:], str(script)])
    try:
        tracer.wait_attached()
        wl = Workload(workload_bin, "kill", "4", "0")     # one exec, then 4 kill(getpid(), 0)
        wl.go()
        wl.finish()
        time.sleep(0.1)
    finally:
        tracer.signal(signal.SIGINT)
        rc = tracer.wait()
    assert rc == 0, tracer.stderr
    counts = counts_printed(tracer.stdout)
    assert counts.get("sched:sched_process_exec", 0) >= 1, tracer.stdout
    assert counts.get("syscalls:k", 0) >= 4, tracer.stdout
    assert "Traceback" not in tracer.stderr


def test_template_with_exit_after_n(tmp_path, workload_bin):
    template = template_for("syscalls:sys_enter_getppid")
    script = write_script(tmp_path, template, "generated.py")
    wl = Workload(workload_bin, "getppid", "5000")
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-N", "17", "-p", str(wl.pid), str(script)])
    try:
        tracer.wait_attached()
        wl.go()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    assert counts_printed(tracer.stdout) == {"syscalls:sys_enter_getppid": 17}


# -- a __data_loc payload that fills the kept 4 KB, with a callchain -------------------------------------

def long_path_copy_of_true(base: Path, length: int) -> Path:
    """A copy of /bin/true at an absolute path of exactly LENGTH characters (< PATH_MAX)."""
    d = base
    while len(str(d)) + 200 + 1 + 20 < length:
        d = d / ("d" * 199)
    d.mkdir(parents=True, exist_ok=True)
    name = "t" * (length - len(str(d)) - 1)
    assert 0 < len(name) < 256
    target = d / name
    target.write_bytes(Path("/bin/true").read_bytes())
    target.chmod(0o755)
    assert len(str(target)) == length
    return target


@pytest.mark.parametrize("attrs", [
    "",
    "stack",
])
def test_data_loc_payload_of_4_kb(tmp_path, attrs):
    target = long_path_copy_of_true(tmp_path, 4085)      # record: 20 + 4086 bytes, more than 4096
    script = write_script(tmp_path, '''
seen = []
def sched__sched_process_exec(event):
    seen.append((event._pid, event.common_type, event.pid, len(event.filename), event.filename[:40]))
def __exit__():
    for s in seen:
        print("EXEC", *s)
''')
    tracer = Tracer(["-e", f"sched:sched_process_exec//{attrs}/" if attrs else "sched:sched_process_exec",
                     str(script)])
    try:
        tracer.wait_attached()
        child = subprocess.Popen([str(target)])
        child.wait(timeout=10)
        time.sleep(0.1)
    finally:
        tracer.signal(signal.SIGINT)
        rc = tracer.wait()
    assert rc == 0, tracer.stderr
    mine = [l.split(" ", 5) for l in tracer.stdout.splitlines() if l.startswith(f"EXEC {child.pid} ")]
    assert len(mine) == 1, tracer.stdout
    _, pid, common_type, ev_pid, length, head = mine[0]
    expected_type = int((Path(tracefs_root()) / "events/sched/sched_process_exec/id").read_text())
    assert int(common_type) == expected_type & 0xFFFF
    assert int(ev_pid) == child.pid
    assert head == str(target)[:40]
    # the BPF side keeps 4 KB of the record: the 4085-character name arrives cut, never garbled
    assert 4000 < int(length) <= 4085
