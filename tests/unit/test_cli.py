"""The command line (SPEC §2): options → RunConfig, and usage errors as one clear line, exit 2.

``ebpfprof.cli.main(argv)`` runs in-process (stderr captured); ``run_python`` is replaced where a
test only checks what the command line decided. ``help`` runs against a fake tracefs made of
fixture formats, so nothing here needs root or a kernel.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import support

import ebpfprof
import ebpfprof.run.session
from ebpfprof.cli import main
from ebpfprof.options import DEFAULT_MMAP_PAGES, RunConfig

FORMATS = support.FIXTURES / "formats"
ROOT = support.ROOT


@pytest.fixture(autouse=True)
def _keep_sigterm():
    """main() installs a SIGTERM handler; give pytest its own back."""
    old = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, old)


@pytest.fixture
def runs(monkeypatch):
    """The RunConfig each `ebpfprof python` invocation would run with (nothing is loaded)."""
    got: list[RunConfig] = []

    def fake_run(config):
        got.append(config)
        return 0

    monkeypatch.setattr(ebpfprof.run.session, "run_python", fake_run)
    return got


def run(capsys, *argv: str) -> tuple[int, str, str]:
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def assert_usage_error(rc: int, err: str, message: str, second: str | None = "Try 'ebpfprof python --help'.") -> None:
    assert rc == 2
    lines = err.splitlines()
    assert lines[0] == f"ebpfprof: error: {message}"
    assert [l for l in lines if l.startswith("ebpfprof: error:")] == [lines[0]]
    if second is not None:
        assert lines[1:] == [second]
    assert "Traceback" not in err


# -- what the command line decides ------------------------------------------------------------------

def test_defaults(capsys, runs):
    rc, out, err = run(capsys, "python", "-e", "sched:sched_wakeup", "script.py")
    assert (rc, out, err) == (0, "", "")
    assert runs == [RunConfig(events=("sched:sched_wakeup",), module="script.py")]
    assert runs[0].mmap_pages == DEFAULT_MMAP_PAGES
    assert DEFAULT_MMAP_PAGES & (DEFAULT_MMAP_PAGES - 1) == 0


def test_every_option(capsys, runs):
    rc, _, _ = run(capsys, "python", "-e", "sched:sched_wakeup", "-e", "sched:sched_switch", "-C", "0-1",
                   "-p", "30,10", "-t", "7", "-i", "100", "-m", "64", "-N", "9", "--order", "-g",
                   "--no-user-callchain", "--no-kernel-callchain", "-vv", "m")
    assert rc == 0
    assert runs == [RunConfig(events=("sched:sched_wakeup", "sched:sched_switch"), module="m", args=(),
                              cpus=(0, 1), pids=(10, 30), tids=(7,), interval_ms=100, mmap_pages=64,
                              exit_after=9, order=True, call_graph=True, kernel_callchain=False,
                              user_callchain=False, python_callchain=False, verbose=2)]


def test_python_callchain_reaches_the_run(capsys, runs):
    rc, _, _ = run(capsys, "python", "-e", "a:b", "--python-callchain", "s.py")
    assert rc == 0 and runs[0].python_callchain is True


def test_quiet(capsys, runs):
    run(capsys, "python", "-q", "-e", "a:b", "m")
    assert runs[0].verbose == -1


def test_options_after_module_are_ebpfprofs(capsys, runs):
    run(capsys, "python", "-e", "a:b", "script.py", "-N", "5", "x", "y")
    assert (runs[0].module, runs[0].args, runs[0].exit_after) == ("script.py", ("x", "y"), 5)


def test_everything_after_double_dash_is_the_scripts(capsys, runs):
    run(capsys, "python", "-e", "a:b", "--", "script.py", "-N", "5", "--flag")
    assert (runs[0].module, runs[0].args, runs[0].exit_after) == ("script.py", ("-N", "5", "--flag"), None)
    run(capsys, "python", "-e", "a:b", "script.py", "a", "--", "-N", "5")
    assert (runs[1].module, runs[1].args, runs[1].exit_after) == ("script.py", ("a", "-N", "5"), None)


def test_long_option_names(capsys, runs):
    run(capsys, "python", "--event", "a:b", "--cpus", "1", "--pids", "2", "--tids", "3", "--interval", "4",
        "--mmap-pages", "8", "--exit-N", "6", "--call-graph", "--verbose", "m")
    c = runs[0]
    assert (c.cpus, c.pids, c.tids, c.interval_ms, c.mmap_pages, c.exit_after, c.call_graph, c.verbose) == (
        (1,), (2,), (3,), 4, 8, 6, True, 1)


# -- usage errors -----------------------------------------------------------------------------------

@pytest.mark.parametrize("value, message", [
    ("3", "3 is not a power of two (try 2 or 4)"),
    ("100", "100 is not a power of two (try 64 or 128)"),
    ("-4", "-4 is not a power of two (try 1)"),
    ("abc", "'abc' is not a valid integer."),
])
def test_mmap_pages_must_be_a_power_of_two(capsys, runs, value, message):
    rc, out, err = run(capsys, "python", "-e", "a:b", "-m", value, "s.py")
    assert_usage_error(rc, err, f"Invalid value for '-m' / '--mmap-pages': {message}")
    assert runs == [] and out == ""


def test_mmap_pages_zero_suggests_one_value(capsys, runs):
    rc, _, err = run(capsys, "python", "-e", "a:b", "-m", "0", "s.py")
    assert rc == 2
    assert "try 1 or 1" not in err


def test_mmap_pages_powers_of_two_accepted(capsys, runs):
    for pages in ("1", "2", "4096"):
        run(capsys, "python", "-e", "a:b", "-m", pages, "s.py")
    assert [c.mmap_pages for c in runs] == [1, 2, 4096]


@pytest.mark.parametrize("opt, long, value, message", [
    ("-C", "--cpus", "0-a", "'0-a' in -C list '0-a' is not a number or a range like 0-3"),
    ("-C", "--cpus", "", "empty -C list"),
    ("-C", "--cpus", "3-1", "bad range '3-1' in -C list '3-1'"),
    ("-p", "--pids", "1,,2", "empty item in -p list '1,,2'"),
    ("-p", "--pids", "abc", "'abc' in -p list 'abc' is not a number or a range like 0-3"),
    ("-p", "--pids", "0-99999999", "range '0-99999999' in -p list '0-99999999' is too large"),
    ("-t", "--tids", ",1", "empty item in -t list ',1'"),
])
def test_bad_id_lists(capsys, runs, opt, long, value, message):
    rc, _, err = run(capsys, "python", "-e", "a:b", opt, value, "s.py")
    assert_usage_error(rc, err, f"Invalid value for '{opt}' / '{long}': {message}")
    assert runs == []


@pytest.mark.parametrize("opt, long, value, message", [
    ("-i", "--interval", "0", "0 is not a positive number"),
    ("-i", "--interval", "-5", "-5 is not a positive number"),
    ("-i", "--interval", "x", "'x' is not a valid integer."),
    ("-N", "--exit-N", "0", "0 is not a positive number"),
])
def test_positive_numbers(capsys, runs, opt, long, value, message):
    rc, _, err = run(capsys, "python", "-e", "a:b", opt, value, "s.py")
    assert_usage_error(rc, err, f"Invalid value for '{opt}' / '{long}': {message}")


def test_missing_module(capsys, runs):
    rc, _, err = run(capsys, "python", "-e", "sched:sched_wakeup")
    assert_usage_error(rc, err, "missing MODULE: a script to run, or `help` for a template")


def test_missing_event(capsys, runs):
    rc, _, err = run(capsys, "python", "script.py")
    assert_usage_error(rc, err, "Missing option '-e' / '--event'.")


@pytest.mark.parametrize("argv", [
    ["python", "-e", "a:b", "script.py", "--threshold", "100"],
    ["python", "-e", "a:b", "--threshold", "script.py"],
])
def test_an_option_for_the_script_without_double_dash(capsys, runs, argv):
    rc, _, err = run(capsys, *argv)
    assert_usage_error(rc, err, "No such option '--threshold'.",
                       "hint: arguments for the script go after --: ebpfprof python -e EVENT -- script.py --its-option")
    assert runs == []


def test_unknown_command(capsys):
    rc, _, err = run(capsys, "pyhton", "-e", "a:b", "s.py")
    assert_usage_error(rc, err, "No such command 'pyhton'. Did you mean 'python'?", "Try 'ebpfprof --help'.")


def test_help(capsys):
    rc, out, err = run(capsys, "--help")
    assert rc == 0 and err == ""
    assert out.startswith("Usage: ebpfprof [OPTIONS] COMMAND [ARGS]...")
    assert "  python " in out
    rc, out, err = run(capsys, "python", "--help")
    assert rc == 0 and err == ""
    assert out.startswith("Usage: ebpfprof python [OPTIONS] [--] MODULE [ARGS...]")
    for opt in ("-e, --event", "-C, --cpus", "-p, --pids", "-t, --tids", "-i, --interval", "-m, --mmap-pages",
                "-N, --exit-N", "--order", "-g, --call-graph", "--kernel-callchain / --no-kernel-callchain",
                "--user-callchain / --no-user-callchain", "--python-callchain", "-v, --verbose", "-q, --quiet"):
        assert opt in out, opt
    rc, out2, _ = run(capsys, "python", "-h")
    assert rc == 0 and out2 == out


def test_version(capsys):
    rc, out, _ = run(capsys, "--version")
    assert rc == 0 and out == f"ebpfprof, version {ebpfprof.__version__}\n"


def test_a_real_process_exits_2_with_one_line():
    proc = subprocess.run([sys.executable, "-m", "ebpfprof", "python", "-e", "sched:sched_wakeup", "-m", "3",
                           "s.py"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr == ("ebpfprof: error: Invalid value for '-m' / '--mmap-pages': 3 is not a power of two "
                           "(try 2 or 4)\nTry 'ebpfprof python --help'.\n")


# -- help: the template, against a fake tracefs --------------------------------------------------------

@pytest.fixture
def fake_tracefs(tmp_path, monkeypatch):
    with support.fake_tracefs(tmp_path, monkeypatch, ("sched_sched_wakeup", "sched_sched_switch", "sched_sched_process_exec")) as root:
        yield root


def test_help_prints_the_template(capsys, fake_tracefs):
    rc, out, err = run(capsys, "python", "-e", "sched:sched_wakeup//alias=w/,sched:sched_process_exec",
                       "-i", "500", "help")
    assert (rc, err) == (0, "")
    assert out.splitlines()[0] == ("#!/usr/bin/env -S ebpfprof python -e "
                                   "sched:sched_wakeup//alias=w/,sched:sched_process_exec -i 500")
    assert "\ndef sched__w(event):\n" in out and "\ndef sched__sched_process_exec(event):\n" in out
    compile(out, "template.py", "exec")


def test_help_with_a_wildcard_gives_one_handler_per_match(capsys, fake_tracefs):
    rc, out, _ = run(capsys, "python", "-e", "sched:sched_[sw]*", "help")
    assert rc == 0
    assert "\ndef sched__sched_switch(event):\n" in out and "\ndef sched__sched_wakeup(event):\n" in out
    assert "\ndef sched__sched_process_exec(event):\n" not in out


def test_help_for_an_unknown_tracepoint_suggests(capsys, fake_tracefs):
    rc, out, err = run(capsys, "python", "-e", "sched:sched_wakeupp", "help")
    assert rc == 2 and out == ""
    lines = err.splitlines()
    assert lines[0] == "ebpfprof: error: unknown tracepoint 'sched:sched_wakeupp'"
    assert lines[1].startswith("hint: did you mean sched:sched_wakeup, ") and len(lines) == 2


def test_help_with_a_bad_selector(capsys, fake_tracefs):
    rc, out, err = run(capsys, "python", "-e", "sched:sched_wakeup//stak/", "help")
    assert rc == 2 and out == ""
    assert err.splitlines() == [
        "ebpfprof: error: -e 'sched:sched_wakeup//stak/': unknown ATTR 'stak' at column 21",
        "    sched:sched_wakeup//stak/",
        "                        ^~~~",
        "hint: did you mean 'stack'? known ATTRs: stack, max-stack, alias, cpus, str, python-stack",
    ]


def test_help_with_a_cpu_that_is_not_online(capsys, fake_tracefs):
    rc, _, err = run(capsys, "python", "-e", "sched:sched_wakeup", "-C", "4095", "help")
    assert rc == 2
    assert err.splitlines()[0] == "ebpfprof: error: -C names CPU 4095, which is not online"
    assert err.splitlines()[1].startswith("hint: online CPUs here: ")
    assert "Traceback" not in err


# -- -m: what the kernel and the memory can take -----------------------------------------------------

def test_m_beyond_what_a_bpf_ring_holds_is_refused_with_the_largest_that_works():
    proc = subprocess.run([sys.executable, "-m", "ebpfprof", "python", "-e", "sched:sched_wakeup", "-m", "4194304",
                           "s.py"], capture_output=True, text=True, timeout=60, cwd=ROOT)
    n = os.cpu_count() or 1
    largest = 1 << 19
    while largest * 4096 * n > 1 << 31:
        largest //= 2
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr == (f"ebpfprof: error: -m 4194304: 4194304 pages x {n} CPUs is a {16 * n:g} GiB ring, "
                           f"more than a BPF ring buffer can hold (2 GiB); the largest -m here is {largest}\n")


@pytest.mark.parametrize("pages, cpus, available, message", [
    (262144, 2, 1 << 40, None),                                  # 2 GiB: the kernel's largest
    (524288, 2, 1 << 40, "-m 524288: 524288 pages x 2 CPUs is a 4 GiB ring, more than a BPF ring buffer can "
                         "hold (2 GiB); the largest -m here is 262144"),
    (4096, 3, 1 << 40, None),                                    # 48 MiB rounds up to 64 MiB
    (131072, 2, 1 << 30, "-m 131072: 131072 pages x 2 CPUs is a 1 GiB ring, more than half of the memory "
                         "available (1 GiB); the largest -m here is 65536"),
    (65536, 2, 1 << 30, None),                                   # 512 MiB: half of it, allowed
    (1, 1, 4096, "-m 1: 1 pages x 1 CPUs is a 4 KiB ring, more than half of the memory available "
                 "(4 KiB); no -m fits"),
    (1 << 20, 2, None, "-m 1048576: 1048576 pages x 2 CPUs is a 8 GiB ring, more than a BPF ring buffer can "
                       "hold (2 GiB); the largest -m here is 262144"),     # no /proc/meminfo
])
def test_check_mmap_pages(pages, cpus, available, message):
    from ebpfprof.errors import UsageError
    from ebpfprof.options import check_mmap_pages

    if message is None:
        check_mmap_pages(pages, cpus, available)
        return
    with pytest.raises(UsageError) as info:
        check_mmap_pages(pages, cpus, available)
    assert info.value.message == message and info.value.exit_code == 2
