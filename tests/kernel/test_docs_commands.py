"""The guide's `list`, `trace` and API examples, run here: what they print is what the guide
shows (pids, times, CPUs and kernel addresses of the moment put in)."""
from __future__ import annotations

import re
import subprocess
import sys

from runner import ROOT, Workload, run_ebpfprof, workload_under
from test_docs_live import doc_blocks

GUIDE = "docs/guide.md"


def commands_and_outputs(heading: str) -> list[tuple[str, str]]:
    """(command after '# ', what follows it up to the next command) in the blocks of a section."""
    text = (ROOT / GUIDE).read_text()
    section = text[text.index(heading):]
    section = section[:section.index("\n## ", 1)]
    out = []
    for block in re.findall(r"^```\n(.*?)^```$", section, re.M | re.S):
        for part in re.split(r"^# ", block, flags=re.M)[1:]:
            command, _, shown = part.partition("\n")
            out.append((command, shown))
    return out


def test_list_examples_print_what_the_guide_shows():
    examples = commands_and_outputs("## Finding events: `list`")
    assert len(examples) == 5
    for command, shown in examples:
        argv = [a.strip("'") for a in command.split()]
        assert argv[0] == "ebpfprof"
        proc = run_ebpfprof(*argv[1:])
        assert proc.stdout + proc.stderr == shown, command
        assert proc.returncode == (1 if shown.startswith("ebpfprof: error:") else 0)


def _numbers_out(text: str) -> str:
    """The parts of a trace line that belong to the moment: time, pid, cpu, addresses."""
    text = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}", "DATE", text, flags=re.M)
    text = re.sub(r"\[\d{3}\] \d+\.\d{6}", "[CPU] TIME", text)
    text = re.sub(r"\b(workload|python3?) +\d+ ", r"\1 PID ", text)
    text = re.sub(r"pid: 0x[0-9a-f]{8}", "pid: PIDHEX", text)
    return re.sub(r"^    [0-9a-f]{16} (\S+)\+0x[0-9a-f]+ ", r"    ADDR \1+OFF ", text, flags=re.M)


def test_trace_examples_print_what_the_guide_shows(workload_bin):
    (getppid_cmd, getppid_shown), (kill_cmd, kill_shown) = commands_and_outputs("## A quick look: `trace`")
    for command, shown, calls in ((getppid_cmd, getppid_shown, ("getppid", "3")),
                                  (kill_cmd, kill_shown, ("kill", "2", "0"))):
        wl = Workload(workload_bin, *calls)
        argv = command.split()[1:]
        argv[-1] = str(wl.pid)                     # -p PID last, as the guide writes it
        proc = subprocess.Popen([sys.executable, "-m", "ebpfprof", *argv[:1], "-v", *argv[1:]],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

        def attached():
            while "attached" not in proc.stderr.readline():
                assert proc.poll() is None, "ebpfprof exited before it attached"

        out, err = workload_under(proc, wl, attached)
        assert proc.returncode == 0, err
        assert _numbers_out(out + err) == _numbers_out(shown), command


def test_api_worked_example_prints_what_the_guide_shows(tmp_path):
    script_text = doc_blocks(GUIDE, "## From your own program: the Python API")[0]
    shown = doc_blocks(GUIDE, "## From your own program: the Python API")[1]
    command, _, output = shown.partition("\n")
    assert command.startswith("# python3 syscalls_of.py ")
    script = tmp_path / "syscalls_of.py"
    script.write_text(script_text)
    from runner import build_testprog

    wl = Workload(build_testprog("workload"), "getppid", "5000")
    proc = subprocess.Popen([sys.executable, str(script), str(wl.pid)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        first = proc.stdout.readline()           # said once the trace is attached
        wl.go()
        wl.finish()
        rest, err = proc.communicate(timeout=30)
    finally:
        wl.kill()
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0 and err == "", err
    doc_pid = command.split()[3]
    assert first + rest == output.replace(doc_pid, str(wl.pid))


def test_api_handlers_example_runs(tmp_path):
    block = doc_blocks(GUIDE, "## From your own program: the Python API")[2]
    assert "handlers=" in block
    proc = subprocess.run([sys.executable, "-c", block], capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith(" 100") and proc.stderr == ""
