"""perf-prof's conventions (issue #9, part 5), on live events: what goes to stdout and stderr,
and the comm column of event.print() for tasks that are gone by the time it prints.
"""
from __future__ import annotations

from runner import run_ebpfprof, write_script

PRINT_NOTHING = '''
n = 0
def __sample__(event):
    global n
    n += 1
def __exit__():
    print(f"EVENTS {n}")
'''


def test_a_normal_run_writes_nothing_on_stderr(tmp_path):
    """Harnesses that fail on any stderr line (perf-prof's own tests do) pass a clean run."""
    script = write_script(tmp_path, PRINT_NOTHING)
    proc = run_ebpfprof("python", "-N", "20", "-e", "sched:sched_switch", str(script))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""
    assert proc.stdout == f"Loaded module: {script}\nEVENTS 20\n"


def test_verbose_still_tells_about_the_headers(tmp_path):
    from ebpfprof.bcc_loader import headers_warning

    script = write_script(tmp_path, PRINT_NOTHING)
    proc = run_ebpfprof("python", "-v", "-N", "5", "-e", "sched:sched_switch", str(script))
    assert proc.returncode == 0, proc.stderr
    warning = headers_warning()
    if warning is not None:                  # only machines without the kernel's own headers
        assert f"ebpfprof: {warning}\n" in proc.stderr
    assert "attached 1 tracepoint(s): sched:sched_switch" in proc.stderr


def test_quiet_drops_the_loaded_module_line(tmp_path):
    script = write_script(tmp_path, PRINT_NOTHING)
    proc = run_ebpfprof("python", "-q", "-N", "5", "-e", "sched:sched_switch", str(script))
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout, proc.stderr) == ("EVENTS 5\n", "")


def test_loaded_module_names_the_file_of_a_module_name(tmp_path):
    script = write_script(tmp_path, PRINT_NOTHING, "by_name_mod.py")
    proc = run_ebpfprof("python", "-N", "5", "-e", "sched:sched_switch", "by_name_mod", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == f"Loaded module: {script}"
