"""`ebpfprof list` against this kernel's tracefs: the names and fields it prints are tracefs's,
a pattern that matches nothing is exit 1 with a hint, and -v of a whole system is fast."""
from __future__ import annotations

import fnmatch
import os
import re
import shutil
import subprocess
import time

import pytest

from runner import run_ebpfprof

EVENTS = "/sys/kernel/tracing/events"


def tracefs_events(system_glob: str, name_glob: str) -> list[str]:
    """What tracefs has, read here without ebpfprof: directories with a format file."""
    out = []
    for system in sorted(os.listdir(EVENTS)):
        if not fnmatch.fnmatchcase(system, system_glob) or not os.path.isdir(f"{EVENTS}/{system}"):
            continue
        for name in sorted(os.listdir(f"{EVENTS}/{system}")):
            if fnmatch.fnmatchcase(name, name_glob) and os.path.isfile(f"{EVENTS}/{system}/{name}/format"):
                out.append(f"{system}:{name}")
    return out


def format_fields(event: str) -> list[tuple[str, str]]:
    """(name, C type) of an event's own fields, from its format file."""
    system, name = event.split(":")
    text = open(f"{EVENTS}/{system}/{name}/format").read()
    fields = []
    for decl in re.findall(r"^\s*field:(.*?);\s*offset:", text, re.M):
        m = re.match(r"^(.*?)\s*([A-Za-z_]\w*)\s*(\[[^\]]*\])?$", decl)
        ctype, fname, dims = m.group(1), m.group(2), m.group(3) or ""
        if not fname.startswith("common_"):
            fields.append((fname, ctype + dims))
    return fields


def test_list_names_are_what_tracefs_has():
    proc = run_ebpfprof("list", "sched:sched_*")
    assert (proc.returncode, proc.stderr) == (0, "")
    assert proc.stdout.splitlines() == tracefs_events("sched", "sched_*")


def test_list_v_fields_are_the_format_files():
    proc = run_ebpfprof("list", "-v", "sched:sched_wakeup", "syscalls:sys_enter_openat", "sched:sched_process_exec")
    assert proc.returncode == 0, proc.stderr
    got: dict[str, list[tuple[str, str, str]]] = {}
    for line in proc.stdout.splitlines():
        if not line.startswith(" "):
            current = got.setdefault(line, [])
        else:
            name, python_type, ctype = line.split(None, 2)
            current.append((name, python_type, ctype))
    assert list(got) == ["sched:sched_wakeup", "syscalls:sys_enter_openat", "sched:sched_process_exec"]
    for event, rows in got.items():
        assert [(n, c) for n, _, c in rows] == format_fields(event), event
    assert ("comm", "str", "char[16]") in got["sched:sched_wakeup"]
    assert ("filename", "str", "__data_loc char[]") in got["sched:sched_process_exec"]
    assert ("filename", "int", "const char *") in got["syscalls:sys_enter_openat"]


def test_list_everything_is_every_tracepoint_and_profiler():
    proc = run_ebpfprof("list")
    assert proc.returncode == 0
    lines = proc.stdout.splitlines()
    assert lines[:3] == ["profile", "page-faults", "breakpoint"]
    assert lines[3:] == tracefs_events("*", "*")


def test_a_pattern_that_matches_nothing_is_exit_1_with_a_hint():
    proc = run_ebpfprof("list", "sched:sched_wakup")
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.splitlines() == [
        "ebpfprof: error: no event matches 'sched:sched_wakup'",
        "hint: did you mean sched:sched_wakeup, sched:sched_wakeup_new, sched:sched_waking?",
    ]
    proc = run_ebpfprof("list", "sycalls:*openat")
    assert proc.returncode == 1
    assert proc.stderr.splitlines()[1] == "hint: did you mean syscalls:*openat?"


def test_list_uprobe_functions_of_libc():
    nm = shutil.which("nm")
    proc = run_ebpfprof("list", "uprobe:c:mall*")
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    path = lines[0].split(":")[1]
    assert os.path.basename(path).startswith("libc.so")
    names = [line.split(":")[2] for line in lines]
    assert "malloc" in names and all(n.startswith("mall") for n in names)
    if nm:
        out = subprocess.run([nm, "-D", "--defined-only", path], capture_output=True, text=True).stdout
        exported = {p[2].split("@")[0] for p in (line.split() for line in out.splitlines())
                    if len(p) == 3 and p[1] in "TtWw" and p[2].startswith("mall")}
        assert set(names) == exported


def test_list_a_kprobe_pattern_says_why_not_here():
    from ebpfprof.kernel.features import kprobes_supported

    reason = kprobes_supported()
    proc = run_ebpfprof("list", "kprobe:do_sys_open*")
    if reason is None:
        assert proc.returncode == 0 and "kprobe:do_sys_openat2" in proc.stdout.splitlines()
        return
    assert (proc.returncode, proc.stdout) == (1, "")
    assert proc.stderr.splitlines()[0] == f"ebpfprof: error: kprobe:do_sys_open*: {reason}"


def test_list_v_of_all_syscalls_is_well_under_a_second():
    """The whole command, interpreter start included: the best of three."""
    times = []
    for _ in range(3):
        start = time.perf_counter()
        proc = run_ebpfprof("list", "-v", "syscalls:*")
        times.append(time.perf_counter() - start)
        assert proc.returncode == 0
    assert len([line for line in proc.stdout.splitlines() if not line.startswith(" ")]) == \
        len(tracefs_events("syscalls", "*"))
    assert min(times) < 0.8, times
