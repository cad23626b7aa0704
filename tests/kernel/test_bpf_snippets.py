"""bpf/ as a library: every snippet in a small stand-alone BCC program, on real events.

Not through ebpfprof.codegen: each program is written here, from the snippets' own text
(``BPF(text=..., cflags=["-I", bpf/])``), templates filled with string.Template, attached with
BCC's own calls, and read with BCC's ring_buffer_consume / perf_buffer_poll or map reads.
Snippets that call map methods (``ep_gate.lookup()``) are pasted as text: BCC rewrites those
calls only in the text it is given, not in #included files (docs/bpf-snippets.md says which
ones can be #included). Every check is an exact value of a known workload: our own getppid()
calls, a workload that another process cannot disturb, or an exec/fork/rename we caused.
"""
from __future__ import annotations

import ctypes
import json
import mmap
import os
import re
import string
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from ebpfprof.bcc_loader import import_bcc
from ebpfprof.kernel import perf_abi, tracefs
from ebpfprof.kernel.btf import struct_offsets
from ebpfprof.kernel.event_format import FieldKind
from runner import ROOT, Workload, build_testprog, workload_under

# BCC wants bytes and says so for every str; str keeps these programs readable.
pytestmark = pytest.mark.filterwarnings("ignore:not a bytes object:DeprecationWarning")

BPF_DIR = ROOT / "bpf"
DOC = ROOT / "docs" / "bpf-snippets.md"
SAMPLE = struct.Struct("<QIIIHHII")      # struct ep_sample: time pid tid cpu selector nr_frames lost raw_size
EP_CONTEXT_KERNEL = (1 << 64) - 128
EP_CONTEXT_USER = (1 << 64) - 512
NR_GETPPID = {"x86_64": 110, "aarch64": 173}.get(os.uname().machine)
NR_GETPID = {"x86_64": 39, "aarch64": 172}.get(os.uname().machine)
PID = os.getpid()                       # pytest's main thread: tid == pid


def BPF(text: str):
    import_bcc()                        # the venv reaches BCC through the system path
    from bcc import BPF as _BPF
    return _BPF(text=text, cflags=["-I", str(BPF_DIR)])


def src(name: str) -> str:
    """A snippet's text as it is, its /** documentation included (it is only a comment)."""
    return (BPF_DIR / name).read_text()


LIBRARY_DOC = re.compile(r"\A/\*\*\n.*?\*/\n+", re.S)      # a snippet's leading /** block


def fill(name: str, **values) -> str:
    """A template filled by hand: its /** block (which names the placeholders) dropped, then
    string.Template's substitute (a placeholder left out is an error)."""
    body = LIBRARY_DOC.sub("", src(name), count=1)
    return string.Template(body).substitute({k: str(v) for k, v in values.items()})


# The place a Python stack is read at, where the template has one (python_stack.h): none here.
NO_PYTHON_STACK = {"python_stack": ""}


def ring_head(ring: str = "ring_bpf.h", *, pages: int = 16, every: int = 1, tgid: str = "1",
              tid: str = "1", max_stack: int | None = None) -> str:
    """The usual start of a program: ep_sample.h, prelude.h, a ring, task_filter.h."""
    lines = [f"#define EP_RING_PAGES {pages}", f"#define EP_WAKEUP_EVERY {every}",
             f"#define EP_WANT_TGID(x) ({tgid})", f"#define EP_WANT_TID(x) ({tid})"]
    if max_stack is not None:
        lines.append(f"#define EP_MAX_STACK {max_stack}")
    lines.append('#include "ep_sample.h"')
    lines += [src("prelude.h"), src(ring), '#include "task_filter.h"']
    if max_stack is not None:
        lines.append('#include "scratch.h"')
    return "\n".join(lines) + "\n"


def open_gate(b) -> None:
    b["ep_gate"][ctypes.c_int(0)] = ctypes.c_uint32(1)


def getppid_times(n: int) -> None:
    for _ in range(n):
        os.getppid()


class Records:
    """ep_ring's records, read with BCC: a BPF ring buffer or a perf buffer."""

    def __init__(self, b, perf: bool = False, pages: int = 64) -> None:
        self.b, self.perf = b, perf
        self.raw: list[bytes] = []
        self.perf_lost = 0
        if perf:
            b["ep_ring"].open_perf_buffer(lambda cpu, data, size: self.raw.append(ctypes.string_at(data, size)),
                                          page_cnt=pages, lost_cb=self._lost)
        else:
            b["ep_ring"].open_ring_buffer(lambda ctx, data, size: self.raw.append(ctypes.string_at(data, size)))

    def _lost(self, n: int) -> None:
        self.perf_lost += n

    def drain(self) -> list[bytes]:
        if self.perf:
            self.b.perf_buffer_consume()
        else:
            self.b.ring_buffer_consume()
        out, self.raw = self.raw, []
        return out


def header(rec: bytes) -> dict:
    keys = ("time", "pid", "tid", "cpu", "selector", "nr_frames", "lost", "raw_size")
    return dict(zip(keys, SAMPLE.unpack_from(rec)))


def raw_of(rec: bytes) -> bytes:
    h = header(rec)
    return rec[SAMPLE.size:SAMPLE.size + h["raw_size"]]


def frames_of(rec: bytes) -> list[int]:
    h = header(rec)
    start = SAMPLE.size + ((h["raw_size"] + 7) & ~7)
    return list(struct.unpack_from(f"<{h['nr_frames']}Q", rec, start))


def cpu_state(b) -> list[tuple[int, int]]:
    """(lost, since_wakeup) of every CPU."""
    return [(v.lost, v.since_wakeup) for v in b["ep_cpu_state"][ctypes.c_int(0)]]


class pinned:
    """Run this process on one CPU for a while (exact per-CPU counts)."""

    def __init__(self, cpu: int) -> None:
        self.cpu = cpu

    def __enter__(self):
        self.saved = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {self.cpu})

    def __exit__(self, *exc):
        os.sched_setaffinity(0, self.saved)


@pytest.fixture
def cleanup():
    """BPF objects made by a test, detached at its end."""
    made = []
    yield made
    for b in made:
        b.cleanup()


def fmt(event: str):
    system, name = event.split(":")
    return tracefs.read_format(system, name)


def field_offset(event: str, name: str) -> int:
    return fmt(event).field(name).offset


# -- ep_sample.h ---------------------------------------------------------------------------------
def test_ep_sample_h_layout_seen_by_bpf(cleanup):
    """The offsets and size a BPF program compiles ep_sample.h to are the reader's."""
    b = BPF(r'''
#include "ep_sample.h"
BPF_ARRAY(layout, u64, 9);
int fn(void *ctx)
{
	u64 v[9] = { sizeof(struct ep_sample), offsetof(struct ep_sample, time),
		     offsetof(struct ep_sample, pid), offsetof(struct ep_sample, tid),
		     offsetof(struct ep_sample, cpu), offsetof(struct ep_sample, selector),
		     offsetof(struct ep_sample, nr_frames), offsetof(struct ep_sample, lost),
		     offsetof(struct ep_sample, raw_size) };
	for (int i = 0; i < 9; i++) {
		int k = i;
		u64 *slot = layout.lookup(&k);
		if (slot)
			*slot = v[i];
	}
	return 0;
}
''')
    cleanup.append(b)
    b.attach_tracepoint(tp="syscalls:sys_enter_getppid", fn_name="fn")
    os.getppid()
    assert [b["layout"][ctypes.c_int(i)].value for i in range(9)] == [32, 0, 8, 12, 16, 20, 22, 24, 28]
    assert SAMPLE.size == 32


# -- prelude.h -----------------------------------------------------------------------------------
PRELUDE_PROG = r'''
#include "ep_sample.h"
''' + "%PRELUDE%" + r'''
struct rec {
	struct ep_sample s;
	struct ep_common c;
};
BPF_ARRAY(last, struct rec, 1);
BPF_ARRAY(calls, u64, 1);

int fn(void *ctx)
{
	struct ep_cpu_state *st;
	struct rec *r;
	u32 zero = 0;
	u64 *n;

	if (!ep_gate_open())
		return EP_DONE;
	if ((bpf_get_current_pid_tgid() >> 32) != %PID% || !ep_keep_all(ctx) || !ep_any_cpu(0))
		return EP_DONE;
	n = calls.lookup(&zero);
	st = ep_cpu_state.lookup(&zero);
	r = last.lookup(&zero);
	if (!n || !st || !r)
		return EP_DONE;
	(*n)++;
	ep_fill_header(&r->s, st, 7, 3, 16);
	ep_fill_common(&r->c, 305, r->s.tid);
	return EP_DONE;
}
'''


def test_prelude_h_gate_header_and_common(cleanup):
    """Closed gate: nothing counted; open: every call; the header and common fields as written,
    the CPU's pending losses carried once and reset."""
    b = BPF(PRELUDE_PROG.replace("%PRELUDE%", src("prelude.h")).replace("%PID%", str(PID)))
    cleanup.append(b)
    b.attach_tracepoint(tp="syscalls:sys_enter_getppid", fn_name="fn")
    getppid_times(50)                                   # gate closed
    assert b["calls"][ctypes.c_int(0)].value == 0
    state = b["ep_cpu_state"]
    leaf = state.Leaf()
    for v in leaf:
        v.lost = 5
    state[ctypes.c_int(0)] = leaf
    open_gate(b)
    with pinned(0):
        t0 = time.monotonic_ns()
        os.getppid()
        t1 = time.monotonic_ns()
        r = b["last"][ctypes.c_int(0)]
        first_lost, first_time = r.s.lost, r.s.time
        getppid_times(99)
    r = b["last"][ctypes.c_int(0)]
    assert b["calls"][ctypes.c_int(0)].value == 100
    assert first_lost == 5 and r.s.lost == 0            # carried by one record, then reset
    assert cpu_state(b)[0][0] == 0 and all(lost == 5 for lost, _ in cpu_state(b)[1:])
    assert (r.s.pid, r.s.tid, r.s.cpu, r.s.selector, r.s.nr_frames, r.s.raw_size) == (PID, PID, 0, 7, 3, 16)
    assert t0 < first_time < t1                         # bpf_ktime_get_ns(): CLOCK_MONOTONIC
    assert (r.c.common_type, r.c.common_flags, r.c.common_preempt_count, r.c.common_pid) == (305, 0, 0, PID)


# -- ring_bpf.h ----------------------------------------------------------------------------------
RING_PROG = r'''
int on_enter(void *ctx)
{
	struct ep_cpu_state *st;
	struct ep_sample *s;
	u32 zero = 0;

	if (!ep_gate_open() || !ep_task_wanted())
		return EP_DONE;
	st = ep_cpu_state.lookup(&zero);
	if (!st)
		return EP_DONE;
	s = ep_reserve(sizeof(*s) + 16);
	if (!s) {
		st->lost++;
		return EP_DONE;
	}
	ep_fill_header(s, st, 1, 0, 16);
	__builtin_memset(s + 1, 0, 16);
	ep_fill_common(s + 1, 305, s->tid);
	*(u32 *)((u8 *)(s + 1) + 8) = *(u32 *)(ctx + 8);   /* __syscall_nr */
	ep_submit(ctx, s, sizeof(*s) + 16, st);
	return EP_DONE;
}

/* ep_output: a record built elsewhere (here on the stack) and copied. */
int on_exit(void *ctx)
{
	struct ep_cpu_state *st;
	u64 rec[6] = {};
	u32 zero = 0;

	if (!ep_gate_open() || !ep_task_wanted())
		return EP_DONE;
	st = ep_cpu_state.lookup(&zero);
	if (!st)
		return EP_DONE;
	ep_fill_header((struct ep_sample *)rec, st, 2, 0, 16);
	rec[5] = *(u64 *)(ctx + 16);                        /* ret */
	ep_output(ctx, (struct ep_sample *)rec, sizeof(rec), st);
	return EP_DONE;
}
'''


@pytest.mark.parametrize("ring", ["ring_bpf.h", "ring_perf.h"])
def test_ring_records_arrive_with_their_contents(cleanup, ring):
    """K calls: K records from ep_reserve/ep_submit, K from ep_output, in order, as written."""
    k, every = 500, 64
    b = BPF(ring_head(ring, every=every, tgid=f"(x) == {PID}U") + RING_PROG)
    cleanup.append(b)
    b.attach_tracepoint(tp="syscalls:sys_enter_getppid", fn_name="on_enter")
    b.attach_tracepoint(tp="syscalls:sys_exit_getppid", fn_name="on_exit")
    records = Records(b, perf=ring == "ring_perf.h")
    ppid = os.getppid()
    open_gate(b)
    with pinned(0):
        getppid_times(k)
    got = records.drain()
    state = cpu_state(b)
    assert len(got) == 2 * k
    heads = [header(r) for r in got]
    assert [h["selector"] for h in heads] == [1, 2] * k
    assert {(h["pid"], h["tid"], h["cpu"], h["nr_frames"], h["lost"], h["raw_size"]) for h in heads} == \
        {(PID, PID, 0, 0, 0, 16)}
    times = [h["time"] for h in heads]
    assert times == sorted(times) and len(set(times)) == 2 * k
    for enter, exit_ in zip(got[0::2], got[1::2]):
        assert struct.unpack_from("<HBBiI", raw_of(enter)) == (305, 0, 0, PID, NR_GETPPID)
        assert struct.unpack_from("<q", raw_of(exit_), 8) == (ppid,)
    if ring == "ring_bpf.h":     # a forced wakeup every EP_WAKEUP_EVERY records of a CPU
        assert state[0] == (0, (2 * k) % every)


@pytest.mark.parametrize("ring", ["ring_bpf.h", "ring_perf.h"])
def test_ring_full_counts_every_record_lost(cleanup, ring):
    """A one-page ring not drained while 1000 records come: each is in the ring or counted lost
    on its CPU, and the next record that gets in carries that count."""
    k = 1000
    b = BPF(ring_head(ring, pages=1, tgid=f"(x) == {PID}U") + RING_PROG)
    cleanup.append(b)
    b.attach_tracepoint(tp="syscalls:sys_enter_getppid", fn_name="on_enter")
    records = Records(b, perf=ring == "ring_perf.h", pages=1)
    open_gate(b)
    with pinned(0):
        getppid_times(k)
        kept = records.drain()
        lost = cpu_state(b)[0][0]
        os.getppid()
        (last,) = records.drain()
    assert 0 < len(kept) < k and len(kept) + lost == k
    assert all(header(r)["lost"] == 0 for r in kept)
    assert header(last)["lost"] == lost and cpu_state(b)[0][0] == 0
    if ring == "ring_perf.h":    # the kernel's PERF_RECORD_LOST says the same
        assert records.perf_lost == lost


# -- task_filter.h ---------------------------------------------------------------------------------
TASK_PROG = r'''
#include "ep_sample.h"
%MAPFN%
#include "task_filter.h"
BPF_HASH(calls, u32, u64);

int fn(void *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!ep_task_wanted())
		return 0;
	calls.increment(tgid);
	return 0;
}
'''


@pytest.mark.parametrize("form", ["inline", "map"])
def test_task_filter_h_passes_only_the_wanted_task(cleanup, workload_bin, form):
    """Two workloads make getppid() calls at once; only the wanted one's are counted, whether
    EP_WANT_* is an inline comparison or a map lookup behind a function."""
    a, other = Workload(workload_bin, "getppid", "300"), Workload(workload_bin, "getppid", "200")
    try:
        if form == "inline":
            mapfn = f"#define EP_WANT_TGID(x) ((x) == {a.pid}U)\n#define EP_WANT_TID(x) (1)"
        else:        # BCC rewrites map calls only outside macros: the lookup is in a function
            mapfn = ("BPF_HASH(tids, u32, u8, 4);\n"
                     "static __always_inline int tids_has(u32 id)\n{\n\treturn tids.lookup(&id) != 0;\n}\n"
                     "#define EP_WANT_TGID(x) (1)\n#define EP_WANT_TID(x) tids_has(x)")
        b = BPF(TASK_PROG.replace("%MAPFN%", mapfn))
        cleanup.append(b)
        if form == "map":
            b["tids"][ctypes.c_uint32(a.pid)] = ctypes.c_uint8(1)
        b.attach_tracepoint(tp="syscalls:sys_enter_getppid", fn_name="fn")
        a.go(), other.go()
        a.finish(), other.finish()
        assert {k.value: v.value for k, v in b["calls"].items()} == {a.pid: 300}
    finally:
        a.kill(), other.kill()


# -- cpu_filter.c --------------------------------------------------------------------------------
@pytest.mark.parametrize("expr", ["cpu < 64 && ((0x2ULL >> cpu) & 1)", "cpu == 1"])
def test_cpu_filter_c_passes_only_its_cpus(cleanup, workload_bin, expr):
    """Workloads pinned to CPU 0 and CPU 1: a filter of CPU 1 counts the second's calls only."""
    if os.cpu_count() < 2:
        pytest.skip(f"needs 2 CPUs, this machine has {os.cpu_count()}")
    on0, on1 = Workload(workload_bin, "getppid", "300"), Workload(workload_bin, "getppid", "200")
    try:
        os.sched_setaffinity(on0.pid, {0})
        os.sched_setaffinity(on1.pid, {1})
        b = BPF(fill("cpu_filter.c", fn="want_cpu", cpus="1", expr=expr) + r'''
BPF_HASH(calls, u32, u64);
int fn(void *ctx)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (!want_cpu(bpf_get_smp_processor_id()))
		return 0;
	if (tgid == %A% || tgid == %B%)
		calls.increment(tgid);
	return 0;
}
'''.replace("%A%", str(on0.pid)).replace("%B%", str(on1.pid)))
        cleanup.append(b)
        b.attach_tracepoint(tp="syscalls:sys_enter_getppid", fn_name="fn")
        on0.go(), on1.go()
        on0.finish(), on1.finish()
        assert {k.value: v.value for k, v in b["calls"].items()} == {on1.pid: 200}
    finally:
        on0.kill(), on1.kill()


# -- comm_map.h, comm_exec.c, comm_fork.c, comm_rename.c --------------------------------------------
def comm_prog(*functions: str) -> str:
    return '#include "ep_sample.h"\n' + src("prelude.h") + '#include "comm_map.h"\n' + "\n".join(functions)


def comms(b) -> dict[int, bytes]:
    return {k.value: bytes(v.comm).rstrip(b"\0") for k, v in b["ep_comms"].items()}


def test_comm_map_h_and_comm_exec_c_name_each_exec(cleanup):
    """Closed gate: an exec leaves no name; open: each exec's task is named after its program."""
    b = BPF(comm_prog(src("comm_exec.c")))
    cleanup.append(b)
    b.attach_tracepoint(tp="sched:sched_process_exec", fn_name="ep_comm_exec")
    before = subprocess.Popen(["/bin/true"])
    before.wait()
    open_gate(b)
    after = []
    for program in ("/bin/true", "/bin/echo"):
        p = subprocess.Popen([program], stdout=subprocess.DEVNULL)
        p.wait()
        after.append(p.pid)
    named = comms(b)
    assert before.pid not in named
    assert (named.get(after[0]), named.get(after[1])) == (b"true", b"echo")


def test_comm_fork_c_names_the_child_after_its_parent(cleanup):
    """Each fork of this process: the child is in ep_comms under this process's name."""
    b = BPF(comm_prog(fill("comm_fork.c", child_pid_offset=field_offset("sched:sched_process_fork", "child_pid"))))
    cleanup.append(b)
    b.attach_tracepoint(tp="sched:sched_process_fork", fn_name="ep_comm_fork")
    open_gate(b)
    children = []
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            os._exit(0)
        os.waitpid(pid, 0)
        children.append(pid)
    ours = Path("/proc/self/comm").read_bytes().strip()
    named = comms(b)
    assert [named.get(c) for c in children] == [ours] * 3


def test_comm_rename_c_names_the_renamed_task(cleanup):
    """This thread writes another thread's /proc/self/task/TID/comm (the kernel allows it in one's
    own process only): the renamed thread (the record's pid, not the writer) gets the name."""
    f = fmt("task:task_rename")
    newcomm = f.field("newcomm")
    if newcomm.kind is FieldKind.DYN_STRING:
        where = f"ctx + (*(u32 *)(ctx + {newcomm.offset}) & 0xffff)"
    else:
        where = f"ctx + {newcomm.offset}"
    pid = f.field("pid")
    tid = f"*(u32 *)(ctx + {pid.offset})" if pid is not None else "(u32)bpf_get_current_pid_tgid()"
    b = BPF(comm_prog(fill("comm_rename.c", tid=tid, newcomm=where)))
    cleanup.append(b)
    b.attach_tracepoint(tp="task:task_rename", fn_name="ep_comm_rename")
    open_gate(b)
    started, done = threading.Event(), threading.Event()
    tids = []

    def other():
        tids.append(threading.get_native_id())
        started.set()
        done.wait(10)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        started.wait(10)
        Path(f"/proc/self/task/{tids[0]}/comm").write_text("snip-renamed")
        named = comms(b)
    finally:
        done.set()
        thread.join()
    assert named == {tids[0]: b"snip-renamed"}


# -- scratch.h, dynamic_size.c, tracepoint_scratch.c ------------------------------------------------
def test_tracepoint_scratch_c_with_dynamic_size_c_copies_a_data_loc_record(cleanup):
    """sched_process_exec of /bin/true: the record ends exactly where the filename does, the
    filename is in it, and a kernel callchain follows."""
    exec_fmt = fmt("sched:sched_process_exec")
    loc = exec_fmt.field("filename").offset
    dyn = fill("dynamic_size.c", field="filename", kind="__data_loc", rel_note="", offset=loc, base="")
    fn = fill("tracepoint_scratch.c", index=5, comment="sched:sched_process_exec", fn="on_exec",
              task_check="\t/* every task, every CPU */", filter_fn="ep_keep_all",
              raw_size=exec_fmt.fixed_size, dynamic_size=dyn, event_id=exec_fmt.id,
              kernel_stack=1, user_stack=0, max_stack=127, **NO_PYTHON_STACK)
    b = BPF(ring_head(max_stack=127) + fn)
    cleanup.append(b)
    b.attach_tracepoint(tp="sched:sched_process_exec", fn_name="on_exec")
    records = Records(b)
    open_gate(b)
    pids = []
    for _ in range(3):
        p = subprocess.Popen(["/bin/true"])
        p.wait()
        pids.append(p.pid)
    ours = {header(r)["pid"]: r for r in records.drain() if header(r)["pid"] in pids}
    assert sorted(ours) == sorted(pids)
    for pid, rec in ours.items():
        h, raw = header(rec), raw_of(rec)
        start, length = struct.unpack_from("<HH", raw, loc)
        assert h["selector"] == 5 and h["lost"] == 0
        assert h["raw_size"] == start + length and start >= exec_fmt.fixed_size
        assert raw[start:start + length] == b"/bin/true\0"
        assert struct.unpack_from("<Hi", raw, 0)[0] == exec_fmt.id
        assert struct.unpack_from("<i", raw, 4)[0] == pid               # common_pid
        assert struct.unpack_from("<i", raw, exec_fmt.field("pid").offset)[0] == pid
        frames = frames_of(rec)
        assert len(frames) >= 2 and frames[0] == EP_CONTEXT_KERNEL
        assert all(ip >= 0xffff800000000000 for ip in frames[1:])


def test_scratch_h_user_callchain_of_a_fixed_size_tracepoint(cleanup, workload_bin):
    """tracepoint_scratch.c, user stack only, on the workload's kill(getpid(), 0) calls (made by
    its own syscall instruction, so frame pointers lead back into it): a user context marker,
    then user addresses, one of them in the workload's own text."""
    wl = Workload(workload_bin, "kill", "20", "0")
    try:
        f = fmt("syscalls:sys_enter_kill")
        fn = fill("tracepoint_scratch.c", index=0, comment="kill", fn="on_kill",
                  task_check="\tif (!ep_task_wanted())\n\t\treturn EP_DONE;", filter_fn="ep_keep_all",
                  raw_size=f.fixed_size, dynamic_size="\t/* fixed size */", event_id=f.id,
                  kernel_stack=0, user_stack=1, max_stack=32, **NO_PYTHON_STACK)
        b = BPF(ring_head(tgid=f"(x) == {wl.pid}U", max_stack=32) + fn)
        cleanup.append(b)
        b.attach_tracepoint(tp="syscalls:sys_enter_kill", fn_name="on_kill")
        records = Records(b)
        open_gate(b)
        text = [tuple(int(x, 16) for x in line.split()[0].split("-"))
                for line in Path(f"/proc/{wl.pid}/maps").read_text().splitlines()
                if line.split()[1].startswith("r-x") and line.endswith(str(workload_bin))]
        wl.go()
        got = records.drain()
        wl.finish()
    finally:
        wl.kill()
    assert text and len(got) == 20
    for rec in got:
        h, raw, frames = header(rec), raw_of(rec), frames_of(rec)
        assert (h["pid"], h["raw_size"]) == (wl.pid, f.fixed_size)
        assert struct.unpack_from("<q", raw, f.field("pid").offset)[0] == wl.pid
        assert struct.unpack_from("<q", raw, f.field("sig").offset)[0] == 0
        assert frames[0] == EP_CONTEXT_USER and 2 <= len(frames) <= 33
        assert all(0 < ip < 0x800000000000 for ip in frames[1:])
        assert any(lo <= ip < hi for ip in frames[1:] for lo, hi in text)


# -- tracepoint.c --------------------------------------------------------------------------------
@pytest.mark.parametrize("ring", ["ring_bpf.h", "ring_perf.h"])
def test_tracepoint_c_copies_the_record(cleanup, ring):
    """sys_enter_getppid (12 bytes: the common header, __syscall_nr) through the template: K
    records, each the tracepoint's record with its common header filled in."""
    k = 300
    f = fmt("syscalls:sys_enter_getppid")
    assert f.fixed_size == 12
    fn = fill("tracepoint.c", index=9, comment="syscalls:sys_enter_getppid", fn="on_getppid",
              task_check="\tif (!ep_task_wanted())\n\t\treturn EP_DONE;", filter_fn="ep_keep_all",
              raw_size=12, words=2, copy="\t\t*(u32 *)(dst + 8) = *(u32 *)(ctx + 8);", event_id=f.id)
    b = BPF(ring_head(ring, tgid=f"(x) == {PID}U") + fn)
    cleanup.append(b)
    b.attach_tracepoint(tp="syscalls:sys_enter_getppid", fn_name="on_getppid")
    records = Records(b, perf=ring == "ring_perf.h")
    open_gate(b)
    getppid_times(k)
    got = records.drain()
    assert len(got) == k
    for rec in got:
        h = header(rec)
        assert (h["pid"], h["tid"], h["selector"], h["raw_size"], h["lost"], h["nr_frames"]) == (PID, PID, 9, 12, 0, 0)
        assert struct.unpack_from("<HBBiI", raw_of(rec)) == (f.id, 0, 0, PID, NR_GETPPID)


# -- tracepoint_shared.c ------------------------------------------------------------------------------
def test_tracepoint_shared_c_tells_tracepoints_apart_by_cookie(cleanup):
    """One function on sys_enter_getppid and sys_enter_getpid: the cookie gives each record its
    selector, event id and size."""
    fmts = {3: fmt("syscalls:sys_enter_getppid"), 4: fmt("syscalls:sys_enter_getpid")}
    fn = fill("tracepoint_shared.c", first=3, last=4, count=2, comment="syscalls:sys_enter_getp*",
              fn="shared", copy_max=16, task_check="\tif (!ep_task_wanted())\n\t\treturn EP_DONE;")
    b = BPF(ring_head(tgid=f"(x) == {PID}U") + fn)
    cleanup.append(b)
    prog = b.load_func("shared", b.TRACEPOINT)
    fds = []
    try:
        for index, f in fmts.items():
            perf_fd = perf_abi.open_tracepoint_event(f.id)
            fds.append(perf_fd)
            try:
                fds.append(perf_abi.attach_bpf(prog.fd, perf_fd, index | f.id << 16 | f.fixed_size << 32))
            except OSError as e:
                pytest.skip(f"this kernel attaches no cookie (BPF_LINK_CREATE, Linux 5.15): {e}")
        records = Records(b)
        open_gate(b)
        getppid_times(70)
        for _ in range(30):
            os.getpid()
        got = records.drain()
    finally:
        for fd in fds:
            os.close(fd)
    by_selector: dict[int, int] = {}
    for rec in got:
        h = header(rec)
        f = fmts[h["selector"]]
        by_selector[h["selector"]] = by_selector.get(h["selector"], 0) + 1
        nr = NR_GETPPID if h["selector"] == 3 else NR_GETPID
        assert h["raw_size"] == f.fixed_size
        assert struct.unpack_from("<HBBiI", raw_of(rec)) == (f.id, 0, 0, PID, nr)
    assert by_selector == {3: 70, 4: 30}


# -- probe_prelude.h, probe.c ----------------------------------------------------------------------
def test_probe_c_and_probe_prelude_h_read_a_functions_arguments(cleanup):
    """A uprobe on probed_add(i, 2 * i), K calls: K records holding (i, 2 * i), in order, read
    from the registers at offsets taken from BTF."""
    if os.uname().machine != "x86_64":
        pytest.skip("the argument registers here are x86-64's (di, si)")
    regs = struct_offsets("pt_regs")
    binary = build_testprog("probed")
    k = 40
    fn = fill("probe.c", index=2, comment="uprobe probed_add", fn="on_add",
              task_check="\t/* every task, every CPU */", event_id=0x7777,
              fill=f"\trec[1] = EP_REG(ctx, {regs['di']});\n\trec[2] = EP_REG(ctx, {regs['si']});",
              strings="\t/* no strings */", filter_fn="ep_keep_all", raw_size=24, raw_padded=24,
              kernel_stack=0, user_stack=0, max_stack=1, **NO_PYTHON_STACK)
    wl = Workload(binary, "-n", str(k))
    try:
        b = BPF(ring_head(max_stack=1) + '#include "probe_prelude.h"\n' + fn)
        cleanup.append(b)
        b.attach_uprobe(name=str(binary), sym="probed_add", fn_name="on_add", pid=wl.pid)
        records = Records(b)
        open_gate(b)
        assert wl.go() == ["done", str(k)]
        got = records.drain()
        wl.finish()
    finally:
        wl.kill()
    assert len(got) == k
    for i, rec in enumerate(got):
        h = header(rec)
        assert (h["pid"], h["selector"], h["raw_size"], h["nr_frames"]) == (wl.pid, 2, 24, 0)
        assert struct.unpack_from("<HBBiqq", raw_of(rec)) == (0x7777, 0, 0, wl.pid, i, 2 * i)


# -- sample_filter.c -------------------------------------------------------------------------------
SAMPLE_FILTER_FN = r'''
struct kept_fields {
	u32 pid, tid, cpu, pad;
	u64 ip, addr, period;
	char comm[16];
};
BPF_ARRAY(decided, u64, 1);
BPF_ARRAY(last_kept, struct kept_fields, 1);

/* keeps every other sample (the event is one task's: its samples come one at a time) */
static int every_other(void *raw)
{
	u32 zero = 0;
	u64 *n = decided.lookup(&zero);
	struct kept_fields *k = last_kept.lookup(&zero);

	if (!n || !k)
		return 0;
	if ((*n)++ & 1)
		return 0;
	k->pid = *(u32 *)(raw + 8);
	k->tid = *(u32 *)(raw + 12);
	k->cpu = *(u32 *)(raw + 16);
	k->ip = *(u64 *)(raw + 24);
	k->addr = *(u64 *)(raw + 32);
	k->period = *(u64 *)(raw + 40);
	__builtin_memcpy(k->comm, raw + 48, 16);
	return 1;
}
'''


def ring_samples(ring: mmap.mmap) -> int:
    """PERF_RECORD_SAMPLE records written to a perf event's ring (it never wraps here)."""
    head = struct.unpack_from("<Q", ring, 1024)[0]         # perf_event_mmap_page.data_head
    data_offset, data_size = struct.unpack_from("<QQ", ring, 1040)
    assert head < data_size
    n, pos = 0, 0
    while pos < head:
        kind, _, size = struct.unpack_from("<IHH", ring, data_offset + pos)
        n += kind == 9
        pos += size
    return n


def test_sample_filter_c_drops_samples_before_the_ring(cleanup, workload_bin):
    """A cpu-clock sampling event on a busy workload pinned to CPU 0, with a filter keeping every
    other sample: the event's ring holds exactly the kept samples, the counts say seen and
    kept, and the record the filter read has the sample's fields."""
    ctx = struct_offsets("bpf_perf_event_data")
    regs = struct_offsets("pt_regs")
    ip_reg = "pc" if os.uname().machine == "aarch64" else "ip"
    period = 1_000_000
    program = SAMPLE_FILTER_FN + fill(
        "sample_filter.c", comment="every other sample", fn="filter_sample", words=8,
        pid=8, tid=12, cpu=16, ip=24, addr=32, period=40, comm=48, filter_fn="every_other",
        regs_ip=ctx["regs"] + regs[ip_reg], ip_reg=ip_reg, ctx_addr=ctx["addr"],
        ctx_period=ctx["sample_period"], **NO_PYTHON_STACK)
    b = BPF(program)
    cleanup.append(b)
    prog = b.load_func("filter_sample", b.PERF_EVENT)
    wl = Workload(workload_bin, "spin", "300")
    os.sched_setaffinity(wl.pid, {0})
    attr = perf_abi.PerfEventAttr(type=perf_abi.PERF_TYPE_SOFTWARE, config=perf_abi.PERF_COUNT_SW_CPU_CLOCK,
                                  sample_period=period, sample_type=perf_abi.Sample.TID,
                                  flags=perf_abi.ATTR_DISABLED)
    fd = perf_abi.open_event(attr, wl.pid, -1)
    ring = mmap.mmap(fd, 9 * mmap.PAGESIZE)
    try:
        perf_abi.set_bpf(fd, prog.fd)
        perf_abi.enable(fd)
        wl.go()
        perf_abi.disable(fd)
        in_ring = ring_samples(ring)
        wl.finish()
    finally:
        wl.kill()
        ring.close()
        os.close(fd)
    seen = sum(b["ep_filter_counts"][ctypes.c_int(0)])
    kept = sum(b["ep_filter_counts"][ctypes.c_int(1)])
    assert seen >= 100, seen                      # ~300 in 300 ms of CPU
    assert b["decided"][ctypes.c_int(0)].value == seen
    assert kept == (seen + 1) // 2 and in_ring == kept
    k = b["last_kept"][ctypes.c_int(0)]
    assert (k.pid, k.tid, k.cpu, k.addr, k.period, bytes(k.comm).rstrip(b"\0")) == \
        (wl.pid, wl.pid, 0, 0, period, b"workload")
    assert k.ip != 0


# -- python_stack.h, python_sample.h ---------------------------------------------------------------
PY312 = "/root/.pyenv/versions/3.12.1/bin/python3.12"
EP_CONTEXT_PYTHON = (1 << 64) - 3072
EP_PY_ENTRY = (1 << 64) - 3073


def python_defines() -> str:
    from ebpfprof.kernel.features import task_fsbase_offset

    return f"#define EP_TASK_FSBASE_OFF {task_fsbase_offset()}\n#define EP_PY_MAX_FRAMES 62\n"


def python_workload(script: str, *args: str) -> subprocess.Popen:
    python = PY312 if os.access(PY312, os.X_OK) else "/usr/bin/python3.11"
    if not os.access(python, os.X_OK):
        pytest.skip("no CPython 3.11+ interpreter here")
    proc = subprocess.Popen([python, str(ROOT / "tests" / "testprogs" / script), *args],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().split()[0] == "ready"
    return proc


def fill_py_procs(b, pid: int):
    """ep_py_procs[pid] from ebpfprof.pystack (the user-space half the snippet needs)."""
    from ebpfprof.pystack import bpf_params, python_target

    target = python_target(pid)
    assert target, target.reason
    values = bpf_params(target)
    leaf = b["ep_py_procs"].Leaf()
    for name, _ in leaf._fields_:
        setattr(leaf, name, values[name] if values["tls_ok"] or name != "tls_max_key" else 0)
    b["ep_py_procs"][ctypes.c_uint32(pid)] = leaf
    return target


def python_names(target, words: list[int]) -> list[str]:
    """The qualnames of the (code, instruction) pairs, EP_PY_ENTRY pairs left out."""
    from ebpfprof.pystack import PyFrameResolver

    resolver, out = PyFrameResolver(), []
    for code, instr in zip(words[::2], words[1::2]):
        if code != EP_PY_ENTRY:
            frame = resolver.frame(target, code, instr & ~1)
            if frame is not None:
                out.append(frame.qualname)
    return out


def test_python_stack_h_reads_the_stack_of_the_thread_at_the_event(cleanup, tmp_path):
    """tracepoint_scratch.c with python_stack.h on clock_nanosleep, a CPython process's
    ep_py_procs entry filled from pystack: each record's words after EP_CONTEXT_PYTHON name
    exactly the stack the program recorded at that call (tests/testprogs/pysleeper.py)."""
    nano = fmt("syscalls:sys_enter_clock_nanosleep")
    proc = python_workload("pysleeper.py", str(tmp_path / "calls.json"), "5")
    fn = fill("tracepoint_scratch.c", index=0, comment="clock_nanosleep", fn="on_sleep",
              task_check=f"\tif ((bpf_get_current_pid_tgid() >> 32) != {proc.pid})\n\t\treturn EP_DONE;",
              filter_fn="ep_keep_all", raw_size=nano.fixed_size, dynamic_size="", event_id=nano.id,
              kernel_stack=0, user_stack=0, max_stack=1,
              python_stack="\n\tnr_frames = ep_python_stack(sc, raw_padded, nr_frames);")
    try:
        b = BPF(ring_head(max_stack=1) + python_defines() + src("python_stack.h") + fn)
        cleanup.append(b)
        target = fill_py_procs(b, proc.pid)
        b.attach_tracepoint(tp="syscalls:sys_enter_clock_nanosleep", fn_name="on_sleep")
        records = Records(b)
        open_gate(b)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
        got: dict[int, list] = {}
        for rec in records.drain():
            frames = frames_of(rec)
            assert frames[0] == EP_CONTEXT_PYTHON
            got.setdefault(header(rec)["tid"], []).append(python_names(target, frames[1:]))
    finally:
        proc.kill()
    truth = json.loads((tmp_path / "calls.json").read_text())["calls"]
    want = {int(tid): [[f[0] for f in stack] for stack in stacks] for tid, stacks in truth.items()}
    assert got == want


def test_python_sample_h_writes_a_samples_stack_to_its_ring(cleanup):
    """sample_filter.c (keep all) calling python_sample.h's ep_py_sample, on a cpu-clock event of
    a busy CPython process: the side ring gets one record per sample, with the sample's ip,
    naming a tail of <module> -> spin -> mid -> leaf (tests/testprogs/pyspin.py)."""
    ctx = struct_offsets("bpf_perf_event_data")
    regs = struct_offsets("pt_regs")
    ip_reg = "pc" if os.uname().machine == "aarch64" else "ip"
    regs_ip = ctx["regs"] + regs[ip_reg]
    head = ("#define EP_MAX_STACK 1\n#define EP_PY_RING_PAGES 64\n" + python_defines()
            + '#include "ep_sample.h"\n' + src("prelude.h") + '#include "scratch.h"\n'
            + src("python_stack.h") + src("python_sample.h"))
    keep_all = "static __always_inline int keep_all(void *raw)\n{\n\treturn 1;\n}\n"
    program = head + keep_all + fill(
        "sample_filter.c", comment="every sample", fn="py_sample", words=8,
        pid=8, tid=12, cpu=16, ip=24, addr=32, period=40, comm=48, filter_fn="keep_all",
        regs_ip=regs_ip, ip_reg=ip_reg, ctx_addr=ctx["addr"], ctx_period=ctx["sample_period"],
        python_stack=f"\n\tif (keep)\n\t\tep_py_sample(EP_CTX_U64(ctx, {regs_ip}));")
    b = BPF(program)
    cleanup.append(b)
    prog = b.load_func("py_sample", b.PERF_EVENT)
    proc = python_workload("pyspin.py", "0.5", "wait")
    records: list[bytes] = []
    b["ep_py_ring"].open_ring_buffer(lambda c, data, size: records.append(ctypes.string_at(data, size)))
    attr = perf_abi.PerfEventAttr(type=perf_abi.PERF_TYPE_SOFTWARE, config=perf_abi.PERF_COUNT_SW_CPU_CLOCK,
                                  sample_period=2_000_000, sample_type=perf_abi.Sample.TID,
                                  flags=perf_abi.ATTR_DISABLED)
    fd = perf_abi.open_event(attr, proc.pid, -1)
    try:
        target = fill_py_procs(b, proc.pid)
        perf_abi.set_bpf(fd, prog.fd)
        perf_abi.enable(fd)
        proc.stdin.write("go\n")
        proc.stdin.flush()
        assert proc.stdout.readline().strip() == "done"
        perf_abi.disable(fd)
        b.ring_buffer_consume()
        seen = sum(b["ep_filter_counts"][ctypes.c_int(0)])
        stacks = []
        for rec in records:
            h = header(rec)
            assert (h["pid"], h["tid"], h["raw_size"]) == (proc.pid, proc.pid, 8)
            assert struct.unpack_from("<Q", rec, SAMPLE.size)[0] != 0          # the sample's ip
            frames = frames_of(rec)
            assert frames[0] == EP_CONTEXT_PYTHON
            stacks.append(python_names(target, frames[1:]))
    finally:
        os.close(fd)
        proc.kill()
    assert seen >= 100 and sum(b["ep_py_lost"][ctypes.c_int(0)]) == 0
    assert len(stacks) == seen                    # a record per sample: the thread is in Python code
    full = ["leaf", "mid", "spin", "<module>"]
    assert all(s and s == full[len(full) - len(s):] for s in stacks), stacks[:5]


# -- docs/bpf-snippets.md's worked example ---------------------------------------------------------
def system_python_with_bcc() -> str:
    for python in ("/usr/bin/python3", "/bin/python3"):
        if os.path.exists(python) and subprocess.run([python, "-c", "import bcc"],
                                                     capture_output=True).returncode == 0:
            return python
    pytest.skip("no system python3 imports bcc (python3-bpfcc): the example runs as a user would run it")


def test_the_docs_worked_example_runs_as_written(tmp_path, workload_bin):
    """The example of docs/bpf-snippets.md, read from the page and run by the system's Python (as
    a stand-alone BCC program, no ebpfprof in reach), prints one line per getppid() call of the
    workload and the total."""
    (example,) = [m.group(1) for m in re.finditer(r"```python\n(.*?)```", DOC.read_text(), re.S)
                  if m.group(1).startswith("#!/usr/bin/python3\n")]
    script = tmp_path / "getppid_ring.py"
    script.write_text(example)
    k = 5
    wl = Workload(workload_bin, "getppid", str(k))
    proc = subprocess.Popen([system_python_with_bcc(), str(script), str(BPF_DIR), str(wl.pid)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)

    def attached():
        assert proc.stdout.readline() == "attached\n", proc.stderr.read()

    out, err = workload_under(proc, wl, attached)
    line = (f"pid={wl.pid} tid={wl.pid} raw_size=12 common_type={fmt('syscalls:sys_enter_getppid').id} "
            f"common_pid={wl.pid} __syscall_nr={NR_GETPPID}\n")
    assert out == line * k + f"{k} records, 0 lost\n", err
    assert proc.returncode == 0, err


# -- every snippet documented, indexed and tested --------------------------------------------------
COVERED_BY = {
    "ep_sample.h": "test_ep_sample_h_layout_seen_by_bpf",
    "prelude.h": "test_prelude_h_gate_header_and_common",
    "ring_bpf.h": "test_ring_records_arrive_with_their_contents",
    "ring_perf.h": "test_ring_full_counts_every_record_lost",
    "task_filter.h": "test_task_filter_h_passes_only_the_wanted_task",
    "cpu_filter.c": "test_cpu_filter_c_passes_only_its_cpus",
    "comm_map.h": "test_comm_map_h_and_comm_exec_c_name_each_exec",
    "comm_exec.c": "test_comm_map_h_and_comm_exec_c_name_each_exec",
    "comm_fork.c": "test_comm_fork_c_names_the_child_after_its_parent",
    "comm_rename.c": "test_comm_rename_c_names_the_renamed_task",
    "scratch.h": "test_scratch_h_user_callchain_of_a_fixed_size_tracepoint",
    "dynamic_size.c": "test_tracepoint_scratch_c_with_dynamic_size_c_copies_a_data_loc_record",
    "tracepoint_scratch.c": "test_tracepoint_scratch_c_with_dynamic_size_c_copies_a_data_loc_record",
    "tracepoint.c": "test_tracepoint_c_copies_the_record",
    "tracepoint_shared.c": "test_tracepoint_shared_c_tells_tracepoints_apart_by_cookie",
    "probe.c": "test_probe_c_and_probe_prelude_h_read_a_functions_arguments",
    "probe_prelude.h": "test_probe_c_and_probe_prelude_h_read_a_functions_arguments",
    "sample_filter.c": "test_sample_filter_c_drops_samples_before_the_ring",
    "python_stack.h": "test_python_stack_h_reads_the_stack_of_the_thread_at_the_event",
    "python_sample.h": "test_python_sample_h_writes_a_samples_stack_to_its_ring",
}
SNIPPETS = sorted(p.name for p in BPF_DIR.iterdir() if p.is_file())


def test_every_snippet_has_a_test_here():
    assert sorted(COVERED_BY) == SNIPPETS
    assert all(callable(globals().get(name)) for name in COVERED_BY.values())


@pytest.mark.parametrize("name", SNIPPETS)
def test_every_snippet_is_documented_and_indexed(name):
    """A /** block saying what it needs of the verifier and of its includer (a template: what
    fills it, naming exactly the places its body has), and a row in docs/bpf-snippets.md."""
    text = src(name)
    doc = LIBRARY_DOC.match(text)
    assert doc, f"bpf/{name} does not open with a /** block"
    block, body = doc.group(0), text[doc.end():]
    assert block.startswith(f"/**\n * bpf/{name}: ")
    assert "Verifier:" in block and " * Use:" in block
    places = set(re.findall(r"\$\{(\w+)\}", body))
    if places:
        assert "A template (drop this block, then string.Template)" in block
        assert set(re.findall(r"\$\{(\w+)\}", block)) == places
    else:
        assert "Needs:" in block
    assert re.search(rf"^\| \[{re.escape(name)}\]\(\.\./bpf/{re.escape(name)}\) \|", DOC.read_text(), re.M)
