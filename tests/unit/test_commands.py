"""`ebpfprof list` against a fake tracefs, `trace`'s command line, and the API's checks — no kernel.

The fake tracefs holds every fixture format (tests/fixtures/formats/SYS_NAME.format), so what
`list` prints is compared with files of known content.
"""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
from types import SimpleNamespace

import pytest

import support

import ebpfprof.commands.trace
from ebpfprof.cli import main
from ebpfprof.errors import UsageError

FORMATS = support.FIXTURES / "formats"
NAMES = sorted(p.stem for p in FORMATS.glob("*.format"))      # sched_sched_wakeup, ...


@pytest.fixture(autouse=True)
def _keep_signals():
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR2)}
    yield
    for s, h in old.items():
        signal.signal(s, h)


@pytest.fixture
def fake_tracefs(tmp_path, monkeypatch):
    with support.fake_tracefs(tmp_path, monkeypatch, NAMES) as root:
        yield root


def run(capsys, *argv):
    rc = main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def tracepoint_names():
    return sorted(":".join(n.split("_", 1)) for n in NAMES)


# -- list -------------------------------------------------------------------------------------------

def test_list_without_a_pattern_lists_profilers_then_every_tracepoint(capsys, fake_tracefs):
    rc, out, err = run(capsys, "list")
    assert (rc, err) == (0, "")
    assert out.splitlines() == ["profile", "page-faults", "breakpoint", *tracepoint_names()]


def test_list_a_wildcard_pattern(capsys, fake_tracefs):
    rc, out, _ = run(capsys, "list", "sched:sched_[sw]*")
    assert (rc, out) == (0, "sched:sched_switch\nsched:sched_wakeup\n")


def test_list_a_bare_word_matches_systems_and_names(capsys, fake_tracefs):
    assert run(capsys, "list", "syscalls")[1].splitlines() == [n for n in tracepoint_names() if n.startswith("syscalls:")]
    assert run(capsys, "list", "*getppid")[1] == "syscalls:sys_enter_getppid\nsyscalls:sys_exit_getppid\n"
    assert run(capsys, "list", "page-*")[1] == "page-faults\n"


def test_list_v_shows_the_fields_of_the_format_file(capsys, fake_tracefs):
    rc, out, _ = run(capsys, "list", "-v", "sched:sched_wakeup")
    assert rc == 0
    assert out == ("sched:sched_wakeup\n"
                   "    comm        str    char[16]\n"
                   "    pid         int    pid_t\n"
                   "    prio        int    int\n"
                   "    target_cpu  int    int\n")


def test_list_several_patterns_lists_each_event_once(capsys, fake_tracefs):
    rc, out, _ = run(capsys, "list", "sched:sched_wakeup", "sched:*wake*")
    assert (rc, out) == (0, "sched:sched_wakeup\n")


@pytest.mark.parametrize("pattern, hint", [
    ("sched:sched_wakup", "hint: did you mean sched:sched_wakeup"),
    ("shed:*", "hint: did you mean sched:*?"),
    ("sched:sys_enter_getppid", "hint: did you mean syscalls:sys_enter_getppid"),
    ("sched_wakeupp", "hint: did you mean sched_wakeup"),
])
def test_list_nothing_matching_exits_1_with_a_hint(capsys, fake_tracefs, pattern, hint):
    rc, out, err = run(capsys, "list", pattern)
    assert (rc, out) == (1, "")
    lines = err.splitlines()
    assert lines[0] == f"ebpfprof: error: no event matches '{pattern}'"
    assert lines[1].startswith(hint) and len(lines) == 2


def test_list_nothing_close_still_says_how_to_list(capsys, fake_tracefs):
    rc, _, err = run(capsys, "list", "zzzzqqq")
    assert rc == 1
    assert err.splitlines()[1].startswith("hint: ebpfprof list shows every tracepoint")


def test_list_uprobe_functions_of_a_binary(capsys, tmp_path):
    """The functions a uprobe pattern names come from the file's symbol table (nm says the same)."""
    nm = shutil.which("nm")
    if nm is None:
        pytest.skip("no nm here (binutils)")
    binary = sys.executable
    rc, out, err = run(capsys, "list", f"uprobe:{binary}:Py_Initiali*")
    nm_out = subprocess.run([nm, "-D", "--defined-only", binary], capture_output=True, text=True).stdout
    expected = sorted({line.split()[2].split("@")[0] for line in nm_out.splitlines()
                       if len(line.split()) == 3 and line.split()[1] in "Tt" and line.split()[2].startswith("Py_Initiali")})
    if not expected:
        pytest.skip(f"{binary} exports no Py_Initialize*")
    assert (rc, err) == (0, "")
    assert out.splitlines() == [f"uprobe:{binary}:{name}" for name in expected]


def test_list_uprobe_with_a_typo_suggests(capsys):
    rc, _, err = run(capsys, "list", f"uprobe:{sys.executable}:Py_Initialise")
    assert rc == 1
    assert err.splitlines()[1].startswith(f"hint: did you mean uprobe:{sys.executable}:Py_Initialize")


def test_list_uprobe_of_no_file(capsys):
    rc, _, err = run(capsys, "list", "uprobe:/no/such/file:f")
    assert rc == 2
    assert err.startswith("ebpfprof: error: uprobe:/no/such/file:f: no file '/no/such/file'")
    assert "Traceback" not in err


def test_list_a_probe_pattern_takes_no_filter(capsys):
    rc, _, err = run(capsys, "list", "uprobe:c:malloc/arg1>1/")
    assert rc == 2 and err.startswith("ebpfprof: error: list takes one probe pattern without a filter")


# -- trace's command line ------------------------------------------------------------------------------

@pytest.fixture
def traces(monkeypatch):
    got = []

    def fake_run(config):
        got.append(config)
        return 0

    monkeypatch.setattr(ebpfprof.commands.trace, "run_trace", fake_run)
    return got


def _option_names(command: str, capsys) -> list[str]:
    main([command, "--help"])
    out = capsys.readouterr().out
    return [line.split()[0].rstrip(",") for line in out.splitlines() if line.strip().startswith("-")]


def test_trace_has_every_option_of_python(capsys):
    assert _option_names("trace", capsys) == _option_names("python", capsys)


def test_trace_options_make_the_same_config_as_python(capsys, traces, monkeypatch):
    import ebpfprof.run.session

    pythons = []
    monkeypatch.setattr(ebpfprof.run.session, "run_python", lambda c: pythons.append(c) or 0)
    argv = ["-e", "sched:sched_wakeup", "-C", "0", "-p", "1", "-N", "5", "--order", "-g", "-m", "8", "-q"]
    assert main(["trace", *argv]) == 0
    assert main(["python", *argv, "x.py"]) == 0
    import dataclasses

    assert traces[0] == dataclasses.replace(pythons[0], module=None)
    assert (traces[0].cpus, traces[0].pids, traces[0].exit_after, traces[0].mmap_pages) == ((0,), (1,), 5, 8)


def test_trace_usage_errors(capsys, traces):
    rc, _, err = run(capsys, "trace", "-e", "sched:sched_wakeup", "-m", "3")
    assert rc == 2 and err.splitlines()[-1] == "Try 'ebpfprof trace --help'."
    rc, _, err = run(capsys, "trace", "-e", "sched:sched_wakeup", "--bogus")
    lines = err.splitlines()
    assert rc == 2 and lines[0].startswith("ebpfprof: error: No such option '--bogus'.")
    assert lines[1:] == ["Try 'ebpfprof trace --help'."]       # not python's hint about the script
    rc, _, err = run(capsys, "trace")
    assert rc == 2 and "Missing option '-e'" in err
    assert not traces


def test_trace_printer_stops_quietly_on_a_closed_pipe(monkeypatch):
    silenced = []
    monkeypatch.setattr(ebpfprof.commands.trace, "silence_stdout", lambda: silenced.append(1))
    printer = ebpfprof.commands.trace.trace_handlers().__sample__

    class Event:
        def print(self):
            raise BrokenPipeError

    with pytest.raises(SystemExit) as e:
        printer(Event())
    assert e.value.code == 0 and printer.pipe_closed and silenced == [1]


# -- the API ---------------------------------------------------------------------------------------------

def _modules_after(code: str) -> set[str]:
    prog = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_import_ebpfprof_loads_no_api_and_no_bcc():
    mods = _modules_after("import ebpfprof")
    assert "ebpfprof.api" not in mods and "bcc" not in mods and "click" not in mods


def test_the_api_names_load_without_bcc():
    mods = _modules_after("import ebpfprof\nt = ebpfprof.trace('sched:sched_wakeup')\n"
                          "assert ebpfprof.Trace is type(t) and 'trace' in dir(ebpfprof)")
    assert "ebpfprof.api" in mods and "bcc" not in mods and "pandas" not in mods


def test_unknown_attribute_of_the_package():
    import ebpfprof

    with pytest.raises(AttributeError, match="no attribute 'tarce'"):
        ebpfprof.tarce


@pytest.mark.parametrize("kwargs, message", [
    ({"mmap_pages": 3}, "mmap_pages=3 is not a power of two"),
    ({"cpus": "0-x"}, "cpus: "),
    ({"pids": [-1]}, "pids: [-1] is not a list of ids"),
    ({"exit_after": 0}, "exit_after=0 is not a positive number"),
])
def test_trace_arguments_are_checked_before_anything_loads(kwargs, message):
    import ebpfprof

    with pytest.raises(UsageError) as e:
        ebpfprof.trace("sched:sched_wakeup", **kwargs)
    assert e.value.message.startswith(message)


def test_trace_needs_selectors():
    import ebpfprof

    with pytest.raises(UsageError, match="needs event selectors"):
        ebpfprof.trace()


def test_trace_takes_cpus_and_pids_as_text_or_ints():
    import ebpfprof

    t = ebpfprof.trace("sched:sched_wakeup", cpus="0-1", pids=[7, 3], tids=5)
    assert (t.config.cpus, t.config.pids, t.config.tids) == ((0, 1), (3, 7), (5,))
    assert repr(t) == "<ebpfprof.Trace sched:sched_wakeup not started>"


def test_handlers_by_event_name_or_handler_name():
    from ebpfprof.api import _namespace

    spec = SimpleNamespace(event=SimpleNamespace(event_name="sched:sched_wakeup", handler="sched__sched_wakeup"))
    keep, f, g = [].append, (lambda e: None), (lambda: None)
    ns = _namespace([spec], {"sched:sched_wakeup": f, "__exit__": g}, keep)
    assert vars(ns) == {"__sample__": keep, "sched__sched_wakeup": f, "__exit__": g}
    assert vars(_namespace([spec], {"__sample__": f}, keep)) == {"__sample__": f}
    with pytest.raises(UsageError, match="'sched:sched_wakeupp' names no selector"):
        _namespace([spec], {"sched:sched_wakeupp": f}, keep)
    with pytest.raises(UsageError, match="is not callable"):
        _namespace([spec], {"__lost__": 3}, keep)


def test_collect_needs_an_end():
    import ebpfprof

    with pytest.raises(UsageError, match="collect\\(\\) needs an end"):
        ebpfprof.collect("sched:sched_wakeup")
