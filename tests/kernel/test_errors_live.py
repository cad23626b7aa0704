"""Errors a user can meet (SPEC §8), from the real command on this machine.

Each: a non-zero exit (2 for usage and selector mistakes), exactly one ``ebpfprof: error:`` line on
stderr, and no traceback through ebpfprof's own code. Where the user's script is at fault
(syntax error, exception in ``__init__``), its own traceback is shown — and only its frames.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from runner import (COUNTER, ROOT, Tracer, Workload, ebpfprof_cmd, parse_counts, run_ebpfprof, trace_workload,
                    write_script)

PACKAGE_DIR = str(ROOT / "ebpfprof")


def error_lines(stderr: str) -> list[str]:
    return [l for l in stderr.splitlines() if l.startswith("ebpfprof: error:")]


def frames(stderr: str) -> list[str]:
    return re.findall(r'^\s*File "([^"]+)", line \d+', stderr, re.M)


def assert_one_error(proc: subprocess.CompletedProcess, message: str, *, code: int | None = None,
                     startswith: bool = False) -> str:
    """One `ebpfprof: error:` line saying MESSAGE; no frames of ebpfprof's own files."""
    if code is None:
        assert proc.returncode != 0, proc.stderr
    else:
        assert proc.returncode == code, proc.stderr
    errors = error_lines(proc.stderr)
    assert len(errors) == 1, proc.stderr
    if startswith:
        assert errors[0].startswith(f"ebpfprof: error: {message}"), proc.stderr
    else:
        assert errors[0] == f"ebpfprof: error: {message}", proc.stderr
    assert not [f for f in frames(proc.stderr) if f.startswith(PACKAGE_DIR)], proc.stderr
    return proc.stderr


def hint(stderr: str) -> str:
    hints = [l for l in stderr.splitlines() if l.startswith("hint: ")]
    assert len(hints) == 1, stderr
    return hints[0][len("hint: "):]


@pytest.fixture
def counter(tmp_path) -> Path:
    return write_script(tmp_path, COUNTER)


def test_unknown_tracepoint_suggests_close_names(counter):
    proc = run_ebpfprof("python", "-e", "sched:sched_wakeupp", str(counter))
    err = assert_one_error(proc, "unknown tracepoint 'sched:sched_wakeupp'", code=2)
    assert hint(err).startswith("did you mean sched:sched_wakeup")


def test_unknown_system_says_where_to_look(counter):
    proc = run_ebpfprof("python", "-e", "nosuchsys:foo", str(counter))
    err = assert_one_error(proc, "unknown tracepoint 'nosuchsys:foo'", code=2)
    assert hint(err) == "list them with: ls /sys/kernel/tracing/events/"


def test_wildcard_matching_nothing(counter):
    proc = run_ebpfprof("python", "-e", "sched:no_such_*", str(counter))
    assert_one_error(proc, "no tracepoint matches 'sched:no_such_*'", code=2)


def test_unknown_attr(counter):
    proc = run_ebpfprof("python", "-e", "sched:sched_wakeup//stak/", str(counter))
    err = assert_one_error(proc, "-e 'sched:sched_wakeup//stak/': unknown ATTR 'stak' at column 21", code=2)
    assert err.splitlines()[1:3] == ["    sched:sched_wakeup//stak/", "                        ^~~~"]
    assert hint(err) == "did you mean 'stack'? known ATTRs: stack, max-stack, alias, cpus, str, python-stack"


def test_unknown_field_in_a_filter_lists_the_fields(counter):
    proc = run_ebpfprof("python", "-e", "sched:sched_wakeup/nope>1/", str(counter))
    err = assert_one_error(proc, "sched:sched_wakeup filter 'nope>1': unknown field 'nope'", code=2,
                           startswith=True)
    assert "comm" in err and "target_cpu" in err and "prio" in err


def test_missing_script(tmp_path):
    proc = run_ebpfprof("python", "-e", "sched:sched_wakeup", str(tmp_path / "nope.py"))
    err = assert_one_error(proc, f"Failed to load Python module: {tmp_path / 'nope.py'}: no such file")
    assert "Traceback" not in err


def test_missing_module_name(tmp_path):
    proc = run_ebpfprof("python", "-e", "sched:sched_wakeup", "no_such_module_xyz", cwd=tmp_path)
    err = assert_one_error(proc, "Failed to load Python module: no_such_module_xyz: no file "
                                 "'no_such_module_xyz' and no module 'no_such_module_xyz' on sys.path")
    assert "Traceback" not in err


def test_script_with_a_syntax_error(tmp_path):
    script = write_script(tmp_path, "x = 1\ndef f(:\n    pass\n", "bad.py")
    proc = run_ebpfprof("python", "-e", "sched:sched_wakeup", str(script))
    err = assert_one_error(proc, "cannot load script " + str(script) + ": SyntaxError: invalid syntax (bad.py, line 2)")
    assert frames(err) == [str(script)]                      # the script's traceback, nothing else
    assert err.index("SyntaxError: invalid syntax\n") < err.index("ebpfprof: error:")


def test_script_raising_while_loading(tmp_path):
    script = write_script(tmp_path, "import helper_that_is_missing_xyz\n", "needs.py")
    proc = run_ebpfprof("python", "-e", "sched:sched_wakeup", str(script))
    err = assert_one_error(proc, f"cannot load script {script}: ModuleNotFoundError: "
                                 "No module named 'helper_that_is_missing_xyz'")
    assert frames(err) == [str(script)]


INIT_FAILS = '''
import os

def attach_fds():
    """What attaching a tracepoint program creates: a perf event (with the program set on it) or a
    BPF link. Maps and loaded-but-unattached programs may exist already: they observe nothing."""
    out = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target in ("anon_inode:[perf_event]", "anon_inode:bpf_link"):
            out.append(target)
    return out

def __init__():
    print("ATTACH_FDS", attach_fds(), flush=True)
    check_config()

def check_config():
    raise RuntimeError("config file missing")

def __sample__(event):
    print("EVENT")

def __exit__():
    print("EXIT RAN")
'''


def test_exception_in_init_detaches_and_delivers_nothing(tmp_path):
    script = write_script(tmp_path, INIT_FAILS, "init_fails.py")
    proc = run_ebpfprof("python", "-e", "syscalls:sys_enter_getppid", str(script))
    assert proc.returncode != 0
    errors = error_lines(proc.stderr)
    assert errors == ["ebpfprof: error: the script's __init__() raised an exception; nothing was delivered"]
    # __init__ runs once everything is attached (issue #8): its check sees the attachment (the
    # selector's and the comm tracker's three: a perf event and a bpf_link each)
    assert f"ATTACH_FDS {['anon_inode:[perf_event]', 'anon_inode:bpf_link'] * 4}" in proc.stdout
    assert "EVENT" not in proc.stdout and "EXIT RAN" not in proc.stdout
    assert "RuntimeError: config file missing" in proc.stderr
    assert proc.stderr.index("RuntimeError: config file missing") < proc.stderr.index("ebpfprof: error:")
    script_frames = [f for f in frames(proc.stderr) if f == str(script)]
    assert len(script_frames) == 2                            # __init__, then check_config


def test_the_attach_check_sees_an_attached_run(tmp_path, workload_bin):
    """Control for the test above: the check sees the attachment in __init__ and in handlers."""
    script = write_script(tmp_path, INIT_FAILS.replace("    check_config()\n", "").replace(
        'print("EVENT")', 'print("EVENT", attach_fds(), flush=True)'), "attached.py")
    wl = Workload(workload_bin, "getppid", "3")
    out = trace_workload(wl, ["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), str(script)]).stdout
    # one for the selector, three for the comm tracker (exec, fork, rename: bpf/comm_map.h)
    assert f"ATTACH_FDS {['anon_inode:[perf_event]', 'anon_inode:bpf_link'] * 4}" in out
    events = [l for l in out.splitlines() if l.startswith("EVENT ")]
    assert len(events) == 3 and all("perf_event" in l or "bpf_link" in l for l in events), out


def test_exception_in_init_shows_only_the_scripts_frames(tmp_path):
    script = write_script(tmp_path, INIT_FAILS, "init_fails.py")
    proc = run_ebpfprof("python", "-e", "syscalls:sys_enter_getppid", str(script))
    assert frames(proc.stderr) == [str(script), str(script)], proc.stderr


def test_exception_in_exit_shows_only_the_scripts_frames(tmp_path, workload_bin):
    script = write_script(tmp_path, """
def __sample__(event):
    pass
def __exit__():
    raise ValueError("exit boom")
""", "exit_fails.py")
    wl = Workload(workload_bin, "getppid", "5")
    tracer = Tracer(["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), str(script)])
    try:
        tracer.wait_attached()
        wl.go()
        wl.finish()
        tracer.wait()
    finally:
        wl.kill()
    assert "ValueError: exit boom" in tracer.stderr
    assert frames(tracer.stderr) == [str(script)], tracer.stderr


def test_exception_in_a_handler_is_shown_and_the_run_goes_on(tmp_path, workload_bin):
    script = write_script(tmp_path, '''
n = 0
def syscalls__sys_enter_getppid(event):
    global n
    n += 1
    if n % 10 == 0:
        raise ValueError(f"bad event {n}")
def __exit__():
    print("HANDLED", n)
''')
    wl = Workload(workload_bin, "getppid", "50")
    tracer = trace_workload(wl, ["-e", "syscalls:sys_enter_getppid", "-p", str(wl.pid), str(script)])
    out, err = tracer.stdout, tracer.stderr
    assert "HANDLED 50" in out
    assert err.count("ValueError: bad event") == 5
    assert set(frames(err)) == {str(script)}
    assert not error_lines(err)


def test_kprobe_on_a_kernel_without_kprobes(counter):
    if os.path.exists("/sys/kernel/tracing/kprobe_events"):
        pytest.skip("this kernel has kprobes (/sys/kernel/tracing/kprobe_events exists)")
    proc = run_ebpfprof("python", "-e", "kprobe:do_sys_openat2", str(counter))
    err = assert_one_error(proc, "kprobe:do_sys_openat2: this kernel has no kprobes (CONFIG_KPROBES is not set: "
                                 "no kprobe_events in tracefs); fentry", startswith=True)
    # the other way in, BTF trampolines, is tried for real: refused here (EPERM), or allowed
    assert ("fentry on do_sys_openat2 is refused too (loading it: E" in err
            or "fentry would be allowed here" in err), err
    assert hint(err).startswith("use a tracepoint instead")


def test_kretprobe_of_a_function_the_kernel_lacks(counter):
    if os.path.exists("/sys/kernel/tracing/kprobe_events"):
        pytest.skip("this kernel has kprobes (/sys/kernel/tracing/kprobe_events exists)")
    proc = run_ebpfprof("python", "-e", "kretprobe:no_such_function_xyz", str(counter))
    assert_one_error(proc, "kretprobe:no_such_function_xyz: this kernel has no kprobes (CONFIG_KPROBES is not "
                           "set: no kprobe_events in tracefs); no_such_function_xyz is not a function of "
                           "the kernel's BTF")


def offline_cpu() -> int:
    with open("/sys/devices/system/cpu/online") as f:
        online = f.read().strip()
    last = max(int(part.split("-")[-1]) for part in online.split(","))
    return last + 1


def test_cpu_not_online(counter):
    cpu = offline_cpu()
    proc = run_ebpfprof("python", "-e", "sched:sched_wakeup", "-C", str(cpu), str(counter))
    err = assert_one_error(proc, f"-C names CPU {cpu}, which is not online", code=2)
    assert hint(err).startswith("online CPUs here: ")


def test_cpus_attr_not_online(counter):
    cpu = offline_cpu()
    proc = run_ebpfprof("python", "-e", f"sched:sched_wakeup//cpus={cpu}/", str(counter))
    assert_one_error(proc, f"sched:sched_wakeup//cpus={cpu}/: cpus= names CPU {cpu}, which is not online", code=2)


@pytest.mark.parametrize("args, message", [
    (["-p", "1,,2"], "Invalid value for '-p' / '--pids': empty item in -p list '1,,2'"),
    (["-C", "0-x"], "Invalid value for '-C' / '--cpus': '0-x' in -C list '0-x' is not a number or a range like 0-3"),
    (["-m", "48"], "Invalid value for '-m' / '--mmap-pages': 48 is not a power of two (try 32 or 64)"),
])
def test_bad_option_values(counter, args, message):
    proc = run_ebpfprof("python", "-e", "sched:sched_wakeup", *args, str(counter))
    err = assert_one_error(proc, message, code=2)
    assert err.splitlines()[1] == "Try 'ebpfprof python --help'."


def test_pid_that_does_not_exist(counter):
    with open("/proc/sys/kernel/pid_max") as f:
        pid = int(f.read())                      # pids are below pid_max
    proc = run_ebpfprof("python", "-e", "sched:sched_wakeup", "-p", str(pid), str(counter))
    assert_one_error(proc, f"-p: no process {pid} is running", startswith=True)


def test_long_pid_list_compiles(tmp_path, workload_bin):
    wl = Workload(workload_bin, "getppid", "10")
    # 40 long-lived processes (pid 1 and kernel threads) besides the workload: more than INLINE_ID_LIMIT
    others = [str(p) for p in sorted(int(d) for d in os.listdir("/proc") if d.isdigit())[:40]]
    tracer = trace_workload(wl, ["-e", "syscalls:sys_enter_getppid", "-N", "10", "-p", ",".join(others + [str(wl.pid)]),
                                 str(write_script(tmp_path, COUNTER))])
    assert parse_counts(tracer.stdout) == {"syscalls:sys_enter_getppid": 10}


def test_bcc_missing(counter):
    """EBPFPROF_HIDE_BCC=1 makes ebpfprof's BCC loader behave as if the bcc module were not installed."""
    proc = run_ebpfprof("python", "-e", "sched:sched_wakeup", str(counter), env={"EBPFPROF_HIDE_BCC": "1"})
    err = assert_one_error(proc, "BCC (the bcc Python module) is not installed")
    assert "python3-bpfcc" in hint(err)


@pytest.mark.parametrize("hidden, hint_start", [
    (["/lib/modules"], "BCC looks in /lib/modules/"),
    (["/lib/modules", "/usr/src"], "install them: apt-get install linux-headers-"),
])
def test_kernel_headers_missing(counter, hidden, hint_start):
    """Headers hidden by empty tmpfs mounts in a private mount namespace (the host is untouched)."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.skip("unshare (util-linux) is not installed: cannot hide the kernel headers")
    mounts = " && ".join(f"mount -t tmpfs none {d}" for d in hidden)
    env = {k: v for k, v in os.environ.items() if k != "BCC_KERNEL_SOURCE"}
    proc = subprocess.run([unshare, "--mount", "--propagation", "private", "sh", "-c",
                           f'{mounts} && exec "$@"', "sh", *ebpfprof_cmd("python", "-e", "sched:sched_wakeup",
                                                                         str(counter))],
                          capture_output=True, text=True, timeout=60, env=env)
    err = assert_one_error(proc, f"no kernel headers for BCC in /lib/modules/{os.uname().release}/build")
    assert hint(err).startswith(hint_start)


def _unprivileged_prefix() -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        pytest.skip("setpriv (util-linux) is not installed: cannot drop to an unprivileged user")
    prefix = [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run(prefix + [sys.executable, "-c", "import ebpfprof.cli"], capture_output=True, text=True,
                           cwd="/", timeout=60)
    if probe.returncode != 0:
        pytest.skip(f"uid 65534 cannot import ebpfprof from {ROOT} (is the checkout readable by others?): "
                    f"{probe.stderr.strip().splitlines()[-1] if probe.stderr.strip() else probe.returncode}")
    return prefix


def test_not_root():
    prefix = _unprivileged_prefix()
    proc = subprocess.run(prefix + ebpfprof_cmd("python", "-e", "sched:sched_wakeup", "script.py"),
                          capture_output=True, text=True, cwd="/", timeout=60,
                          env={k: v for k, v in os.environ.items() if not k.startswith("EBPFPROF_")})
    err = assert_one_error(proc, "loading BPF programs needs root or CAP_BPF+CAP_PERFMON")
    assert "CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH" in hint(err)
    assert "Traceback" not in err
