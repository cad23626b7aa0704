"""Probe selectors on real uprobes (issue #11): tests/testprogs/probed.c calls probed_add(i, 2*i)
(returning 3*i + 1) and probed_name("/probed/path/<i%10>") exactly K times, from probed_loop().

kprobes: this machine's kernel has none (CONFIG_KPROBES unset); their tests skip with the
reason the tool detects, and their generated C is covered by golden files (tests/unit).
"""
from __future__ import annotations

import json
import re
import signal
import subprocess

import pytest

from bpfobjs import loaded_program_ids
from runner import Tracer, build_testprog, run_ebpfprof, write_script

from ebpfprof.kernel.features import kprobes_supported
from ebpfprof.symbols.elf import elf_file, load_bias

K = 1000

RECORDER = '''
import json
rows = []
def __sample__(event):
    d = {"_event": event._event, "_pid": event._pid}
    for k in ("__probe_ip", "__probe_func", "__probe_ret_ip", "arg1", "arg2", "retval", "arg1_str"):
        if k in event:
            d[k] = event[k]
    if event._callchain:
        d["symbols"] = [f["symbol"] for f in event._callchain]
    rows.append(d)
def __exit__():
    print("ROWS " + json.dumps(rows), flush=True)
'''


class Probed:
    """tests/testprogs/probed with the -w handshake."""

    def __init__(self, n: int = K) -> None:
        self.binary = build_testprog("probed")
        self.proc = subprocess.Popen([str(self.binary), "-w", "-n", str(n)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        ready = self.proc.stdout.readline().split()
        assert ready and ready[0] == "ready", ready
        self.pid = int(ready[1])

    def go(self) -> None:
        self.proc.stdin.write("go\n")
        self.proc.stdin.flush()
        done = self.proc.stdout.readline().split()
        assert done and done[0] == "done", done

    def finish(self) -> None:
        try:
            self.proc.stdin.write("exit\n")
            self.proc.stdin.flush()
        except BrokenPipeError:
            pass
        self.proc.wait(timeout=20)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def traced(args: list[str], progs: list[Probed], tmp_path, script: str = RECORDER, pid: Probed | None = None):
    """Trace while every program makes its calls; the rows recorded."""
    extra = ["-p", str(pid.pid)] if pid is not None else []
    tracer = Tracer([*args, *extra, str(write_script(tmp_path, script))])
    try:
        tracer.wait_attached()
        for p in progs:
            p.go()
        for p in progs:
            p.finish()
        if pid is None:
            tracer.signal(signal.SIGINT)
        assert tracer.wait(timeout=60) == 0, tracer.stderr
    finally:
        for p in progs:
            p.kill()
        if tracer.proc.poll() is None:
            tracer.proc.kill()
    m = re.search(r"^ROWS (.*)$", tracer.stdout, re.M)
    assert m, tracer.stdout + tracer.stderr
    assert "lost" not in tracer.stderr.replace(", 0 lost", ""), tracer.stderr
    return json.loads(m.group(1)), tracer


def address_in(prog: Probed, symbol: str) -> int:
    return elf_file(str(prog.binary)).symbol(symbol).value + load_bias(prog.pid, str(prog.binary))


def test_uprobe_arguments_exact(tmp_path):
    prog = Probed()
    want_ip = address_in(prog, "probed_add")
    rows, _ = traced(["-e", f'uprobe:probed_add@"{prog.binary}"'], [prog], tmp_path, pid=prog)
    assert len(rows) == K
    assert [r["arg1"] for r in rows] == list(range(K))
    assert all(r["arg2"] == 2 * r["arg1"] for r in rows)
    assert {r["__probe_ip"] for r in rows} == {want_ip}
    assert {r["_event"] for r in rows} == {"uprobe:probed_add"}


def test_uretprobe_values_and_both_handlers(tmp_path):
    prog = Probed()
    script = '''
entries, returns = [], []
def uprobe__probed_add(event):
    entries.append(event.arg1)
def uretprobe__probed_add(event):
    returns.append(event.retval)
def __exit__():
    print("ENTRIES", entries == list(range(%d)), "RETURNS", returns == [3 * i + 1 for i in range(%d)], len(returns))
''' % (K, K)
    tracer = Tracer(["-e", f"uprobe:{prog.binary}:probed_add,uretprobe:{prog.binary}:probed_add",
                     "-p", str(prog.pid), str(write_script(tmp_path, script))])
    try:
        tracer.wait_attached()
        prog.go()
        prog.finish()
        assert tracer.wait(timeout=60) == 0, tracer.stderr
    finally:
        prog.kill()
    assert f"ENTRIES True RETURNS True {K}" in tracer.stdout, tracer.stdout + tracer.stderr


def test_filter_on_an_argument_runs_in_the_kernel(tmp_path):
    prog = Probed()
    rows, tracer = traced(["-e", f'uprobe:probed_add@"{prog.binary}"/arg1 < 10 || arg2 == 1000/'],
                          [prog], tmp_path, pid=prog)
    assert sorted(r["arg1"] for r in rows) == [*range(10), 500]
    # the ring got those 11 records and no others: every record is delivered (no user-space filter)
    assert "11 events delivered, 0 lost" in tracer.stderr, tracer.stderr


def test_pid_restricts_to_one_of_two_processes(tmp_path):
    mine, other = Probed(), Probed()
    rows, _ = traced(["-e", f"uprobe:{mine.binary}:probed_add"], [mine, other], tmp_path, pid=mine)
    assert len(rows) == K and {r["_pid"] for r in rows} == {mine.pid}


def test_everyone_without_pid(tmp_path):
    a, b = Probed(), Probed()
    rows, _ = traced(["-e", f"uprobe:{a.binary}:probed_add"], [a, b], tmp_path)
    per = {pid: sum(1 for r in rows if r["_pid"] == pid) for pid in (a.pid, b.pid)}
    assert per == {a.pid: K, b.pid: K}


def test_string_argument(tmp_path):
    prog = Probed(25)
    rows, _ = traced(["-e", f"uprobe:{prog.binary}:probed_name//str=1/"], [prog], tmp_path, pid=prog)
    assert [r["arg1_str"] for r in rows] == [f"/probed/path/{i % 10}" for i in range(25)]


def test_callchain_names_the_callers(tmp_path):
    prog = Probed(20)
    rows, _ = traced(["-e", f"uprobe:{prog.binary}:probed_add//stack/"], [prog], tmp_path, pid=prog)
    assert len(rows) == 20
    for r in rows:
        assert r["symbols"][:3] == ["probed_add", "probed_loop", "main"], r["symbols"]
    prog = Probed(20)
    rows, _ = traced(["-e", f"uprobe:{prog.binary}:probed_add//stack/", "--no-user-callchain"], [prog],
                     tmp_path, pid=prog)
    assert len(rows) == 20 and not any("probed_loop" in r.get("symbols", []) for r in rows)


def test_an_offset_is_a_probe_of_its_own(tmp_path):
    """probed_add+0x4 (after `push %rbp; mov %rsp,%rbp`, built -O0) next to probed_add: two
    probes, each K events, told apart by _event and by their handlers; no duplicate warning."""
    prog = Probed()
    entry = address_in(prog, "probed_add")
    script = """
import collections
ips = collections.defaultdict(set)
def uprobe__probed_add(event):
    ips[event._event].add(event.__probe_ip)
def uprobe__probed_add_0x4(event):
    ips[event._event].add(event.__probe_ip)
def __exit__():
    print("IPS", sorted((k, sorted(v)) for k, v in ips.items()))
    print("COUNTS", n)
n = collections.Counter()
_handlers = (uprobe__probed_add, uprobe__probed_add_0x4)
def __sample__(event):
    raise SystemExit("no handler for " + event._event)
"""
    script = script.replace("ips[event._event].add", "n[event._event] += 1; ips[event._event].add")
    tracer = Tracer(["-e", f"uprobe:{prog.binary}:probed_add,uprobe:{prog.binary}:probed_add+0x4",
                     "-p", str(prog.pid), str(write_script(tmp_path, script))])
    try:
        tracer.wait_attached()
        prog.go()
        prog.finish()
        assert tracer.wait(timeout=60) == 0, tracer.stderr
    finally:
        prog.kill()
    assert f"IPS [('uprobe:probed_add', [{entry}]), ('uprobe:probed_add+0x4', [{entry + 4}])]" in tracer.stdout, \
        tracer.stdout + tracer.stderr
    assert f"'uprobe:probed_add': {K}" in tracer.stdout and f"'uprobe:probed_add+0x4': {K}" in tracer.stdout
    assert "twice" not in tracer.stderr, tracer.stderr


def test_the_same_probe_twice_is_warned_of(tmp_path):
    binary = build_testprog("probed")
    r = run_ebpfprof("python", "-e", f"uprobe:{binary}:probed_add,uprobe:{binary}:probed_add", "help")
    assert r.returncode == 0, r.stderr
    assert "-e selects uprobe:probed_add twice with the same filter and alias" in r.stderr, r.stderr


def test_an_offset_inside_an_instruction_is_refused_and_the_program_lives(tmp_path):
    """probed_add+0x2 is inside `mov %rsp,%rbp` (bytes 1-3): refused before anything attaches;
    the program then runs its calls to the end (a uprobe there used to crash it: SIGSEGV)."""
    prog = Probed(50)
    try:
        script = write_script(tmp_path, "def __sample__(e): pass\n")
        r = run_ebpfprof("python", "-e", f"uprobe:{prog.binary}:probed_add+0x2", "-p", str(prog.pid), str(script))
        assert r.returncode == 2, r.stderr
        assert "probed_add+0x2 is inside an instruction of probed_add" in r.stderr, r.stderr
        assert "hint: the nearest instructions start at probed_add+0x1 or +0x4" in r.stderr, r.stderr
        prog.go()
        prog.finish()
        assert prog.proc.returncode == 0
    finally:
        prog.kill()


def test_help_says_what_each_probe_field_holds(tmp_path):
    binary = build_testprog("probed")
    r = run_ebpfprof("python", "-e", f"uprobe:{binary}:probed_name//str=1/,uretprobe:{binary}:probed_add", "help")
    assert r.returncode == 0, r.stderr
    regs = {"x86_64": "di"}.get(__import__("os").uname().machine, "regs[0]")
    assert re.search(rf"arg1 +: int +# u64: argument 1 \(register {re.escape(regs)}, unsigned 64-bit\)", r.stdout), r.stdout
    assert re.search(r"arg1_str +: str +# char\[128\]: argument 1 read as a C string", r.stdout), r.stdout
    assert re.search(r"retval +: int +# u64: the return value", r.stdout), r.stdout
    assert re.search(r"__probe_ret_ip +: int +# unsigned long: where the function returns to", r.stdout), r.stdout


EXEC_LATER = """
import os
events = []
def uprobe__xmalloc(event):
    events.append(event)
def __interval__():
    # bash has run `exec sleep` by now: its maps are those of sleep
    if events and os.readlink(f"/proc/{events[0]._pid}/exe").endswith("/sleep"):
        firsts = [e._callchain[0]["symbol"] if e._callchain else None for e in events]
        print("FIRSTS", len(firsts), sorted(set(firsts), key=str), flush=True)
        events.clear()
"""


def test_frames_from_before_an_exec_keep_their_names(tmp_path):
    """bash calls xmalloc, then runs its last command with exec; frames read while that command
    runs are of the bash image still (the maps read at the start), not Unknown."""
    bash = subprocess.run(["sh", "-c", "command -v bash"], capture_output=True, text=True).stdout.strip()
    if not bash or elf_file(bash).symbol("xmalloc") is None:
        pytest.skip("no bash with an xmalloc symbol here")
    proc = subprocess.Popen([bash, "-c", "read x; for i in 1 2 3; do a=$(printf %0100d $i); done; exec sleep 1.5"],
                            stdin=subprocess.PIPE)
    try:
        tracer = Tracer(["-e", f"uprobe:{bash}:xmalloc//stack/", "-p", str(proc.pid), "-i", "200",
                         str(write_script(tmp_path, EXEC_LATER))])
        tracer.wait_attached()
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
        assert tracer.wait(timeout=60) == 0, tracer.stderr
    finally:
        proc.kill()
    m = re.search(r"^FIRSTS (\d+) (.*)$", tracer.stdout, re.M)
    assert m and int(m.group(1)) > 10, tracer.stdout + tracer.stderr
    assert m.group(2) == "['xmalloc']", tracer.stdout


@pytest.mark.parametrize("selector, message", [
    ('uprobe:probed_addd@"PROG"', "'probed_addd' is not a function of"),
    ("uprobe:PROG:probed_add+0x100000", "is past the end of probed_add"),
    ('uprobe:f@"/no/such/file"', "no such file: /no/such/file"),
    ("uprobe:/etc/hostname:f", "is not an ELF binary"),
    ("uprobe:PROG:probed_sink", "'probed_sink' is a variable, not a function"),
    ("uprobe:PROG:probed_add//str=9/", "str=9: give the arguments to read as C strings"),
    ("uprobe:PROG:probed_add/retval > 1/", "retval"),
])
def test_bad_probe_is_one_line_and_attaches_nothing(tmp_path, selector, message):
    binary = build_testprog("probed")
    before = loaded_program_ids()
    script = write_script(tmp_path, "def __sample__(e): pass\n")
    r = run_ebpfprof("python", "-e", selector.replace("PROG", str(binary)), str(script))
    assert r.returncode == 2, r.stderr
    lines = [l for l in r.stderr.splitlines() if not l.startswith("ebpfprof: no kernel headers")]
    assert lines[0].startswith("ebpfprof: error: ") and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (loaded_program_ids() - before), "a program was left loaded"


def test_every_exit_detaches(tmp_path):
    """SIGINT, SIGTERM, an exception in __init__: the run's programs and probes are gone after."""
    binary = build_testprog("probed")
    for how in ("SIGINT", "SIGTERM", "init raises"):
        before = loaded_program_ids()
        body = "def __init__():\n    raise ValueError('no')\n" if how == "init raises" else ""
        tracer = Tracer(["-e", f"uprobe:{binary}:probed_add", str(write_script(tmp_path, body + "def __sample__(e): pass\n"))])
        if how != "init raises":
            tracer.wait_attached()
            tracer.signal(getattr(signal, how))
        rc = tracer.wait(timeout=30)
        assert (rc == 0) == (how != "init raises"), tracer.stderr
        assert not (loaded_program_ids() - before), f"{how}: a program outlived the run"


def test_kprobe_says_what_is_missing(tmp_path):
    reason = kprobes_supported()
    script = write_script(tmp_path, "def __sample__(e): pass\n")
    r = run_ebpfprof("python", "-e", "kprobe:do_sys_openat2", str(script))
    if reason is None:
        pytest.skip("this kernel has kprobes: see test_kprobe_live")
    assert r.returncode != 0 and reason in r.stderr and "Traceback" not in r.stderr


def test_kprobe_live(tmp_path):
    reason = kprobes_supported()
    if reason:
        pytest.skip(reason)
    script = write_script(tmp_path, '''
n = 0
def kprobe__do_sys_openat2(event):
    global n
    n += 1
def __exit__():
    print("N", n)
''')
    tracer = Tracer(["-e", "kprobe:do_sys_openat2", str(script)])
    tracer.wait_attached()
    for _ in range(100):
        open("/dev/null").close()
    tracer.signal(signal.SIGINT)
    assert tracer.wait() == 0, tracer.stderr
    assert int(re.search(r"N (\d+)", tracer.stdout).group(1)) >= 100


def test_print_lines_are_perf_prof_s(tmp_path):
    prog = Probed(3)
    script = "def __sample__(event):\n    event.print(timestamp=False)\n"
    tracer = Tracer(["-e", f"uprobe:{prog.binary}:probed_add,uretprobe:{prog.binary}:probed_add",
                     "-p", str(prog.pid), str(write_script(tmp_path, script))])
    try:
        tracer.wait_attached()
        ip = address_in(prog, "probed_add")            # while the process is alive
        prog.go()
        prog.finish()
        assert tracer.wait(timeout=60) == 0, tracer.stderr
    finally:
        prog.kill()
    func = elf_file(str(prog.binary)).symbol("probed_add").value
    entries = re.findall(r"probed +%d X\.\.\. \[\d+\] [\d.]+: uprobe:probed_add: \(0x([0-9a-f]+)\)$" % prog.pid,
                         tracer.stdout, re.M)
    returns = re.findall(r"uretprobe:probed_add: \(0x([0-9a-f]+) <- 0x([0-9a-f]+)\)$", tracer.stdout, re.M)
    assert [int(x, 16) for x in entries] == [ip] * 3, tracer.stdout
    assert len(returns) == 3 and all(int(f, 16) == func for _, f in returns), tracer.stdout
    assert all(int(r, 16) > ip for r, _ in returns)       # back into probed_loop, after the call
