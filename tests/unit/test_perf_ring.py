"""The perf mmap ring reader (perf_ring.c, sample.c) on hand-built rings, no kernel needed.

Each test lays out what perf_event_open(2) + mmap(2) would give: a struct perf_event_mmap_page,
then 2^n data pages, in a memfd, and writes records into it with struct.pack as
include/uapi/linux/perf_event.h lays them out (PERF_RECORD_SAMPLE members in the order
kernel/events/core.c:perf_output_sample() writes them). The fd goes to the real C Reader as a
perf ring; events reach handlers through Reader.drain(), the path a run takes, and their fields
are checked against the values packed. The encoder below is written from the kernel's
documentation, not from sample.c, so the two can disagree.
"""
from __future__ import annotations

import mmap
import os
import random
import struct
from contextlib import contextmanager

import pytest

import support

from ebpfprof import _ring
from ebpfprof.kernel.perf_abi import ReadFormat as F, Sample as S
from ebpfprof.profilers.base import SampleEvents, sample_fields
from ebpfprof.run.events import field_specs, sample_field_specs

pytestmark = pytest.mark.usefixtures("clean_ring_state")

PAGE = os.sysconf("SC_PAGESIZE")
# struct perf_event_mmap_page: data_head, data_tail, data_offset, data_size open its second KiB
# (the first holds version, lock, index, the time_* fields and __reserved[118*8+4]).
DATA_HEAD, DATA_TAIL, DATA_OFFSET, DATA_SIZE = 1024, 1032, 1040, 1048

PERF_RECORD_MMAP, PERF_RECORD_LOST, PERF_RECORD_COMM = 1, 2, 3
PERF_RECORD_THROTTLE, PERF_RECORD_UNTHROTTLE, PERF_RECORD_SAMPLE = 5, 6, 9
PERF_RECORD_LOST_SAMPLES = 13
ABI_64 = 2
BUILTINS = ("_pid", "_tid", "_time", "_cpu", "_period", "_realtime", "_event", "_callchain")
REG_NAMES = ("r_zero", "r_one", "r_two", "r_three")     # ours: the test does not depend on the arch


# -- the ring ------------------------------------------------------------------------------------

class HandBuiltRing:
    """A memfd laid out like a perf event's mmap: meta page, then data_pages data pages.
    data_head and data_tail start at `start` (free-running counters, as the kernel's)."""

    def __init__(self, data_pages: int = 1, start: int = 0) -> None:
        self.data_pages = data_pages
        self.data_size = data_pages * PAGE
        self.fd = os.memfd_create("ebpfprof-test-perf-ring")
        os.ftruncate(self.fd, (1 + data_pages) * PAGE)
        self.map = mmap.mmap(self.fd, (1 + data_pages) * PAGE)
        struct.pack_into("<QQQQ", self.map, DATA_HEAD, start, start, PAGE, self.data_size)
        self.head = start

    def write(self, *records: bytes) -> None:
        """Records at data_head, wrapping the data area's end; then data_head moves past them."""
        for rec in records:
            off = self.head % self.data_size
            first = min(len(rec), self.data_size - off)
            self.map[PAGE + off:PAGE + off + first] = rec[:first]
            self.map[PAGE:PAGE + len(rec) - first] = rec[first:]
            self.head += len(rec)
        self.publish(self.head)

    def publish(self, head: int) -> None:
        """data_head as the kernel stores it; a test may set it past what was written."""
        self.head = head
        struct.pack_into("<Q", self.map, DATA_HEAD, head)

    @property
    def tail(self) -> int:
        """data_tail as the memfd holds it (what the kernel would read)."""
        return struct.unpack("<Q", os.pread(self.fd, 8, DATA_TAIL))[0]

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


def record(type_: int, body: bytes, misc: int = 0) -> bytes:
    """struct perf_event_header { u32 type; u16 misc; u16 size; } then the body."""
    return struct.pack("<IHH", type_, misc, 8 + len(body)) + body


def u64s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}Q", *values)


# -- PERF_RECORD_SAMPLE, from the uapi comment and perf_output_sample() ---------------------------

def encode_read(rf: int, read: dict) -> bytes:
    """struct read_format: {value, [time_enabled], [time_running], [id], [lost]}, or for a group
    {nr, [time_enabled], [time_running], {value, [id], [lost]}[nr]}."""
    words = []
    if rf & F.GROUP:
        words.append(read["nr"])
        words += [read[k] for k, bit in (("time_enabled", F.TOTAL_TIME_ENABLED),
                                         ("time_running", F.TOTAL_TIME_RUNNING)) if rf & bit]
        for c in read["cntr"]:
            words += [c["value"]] + [c[k] for k, bit in (("id", F.ID), ("lost", F.LOST)) if rf & bit]
    else:
        words.append(read["value"])
        words += [read[k] for k, bit in (("time_enabled", F.TOTAL_TIME_ENABLED),
                                         ("time_running", F.TOTAL_TIME_RUNNING),
                                         ("id", F.ID), ("lost", F.LOST)) if rf & bit]
    return u64s(*words)


def encode_sample(st: int, v: dict, rf: int = 0, hw_idx: bool = False) -> bytes:
    """A sample body. The uapi comment lists AUX before DATA_PAGE_SIZE and lacks CGROUP; the kernel
    writes ... PHYS_ADDR CGROUP DATA_PAGE_SIZE CODE_PAGE_SIZE AUX, and WEIGHT / WEIGHT_STRUCT are
    one u64 (union perf_sample_weight)."""
    out = []
    if st & S.IDENTIFIER:
        out.append(u64s(v["identifier"]))
    if st & S.IP:
        out.append(u64s(v["ip"]))
    if st & S.TID:
        out.append(struct.pack("<II", v["pid"], v["tid"]))
    if st & S.TIME:
        out.append(u64s(v["time"]))
    if st & S.ADDR:
        out.append(u64s(v["addr"]))
    if st & S.ID:
        out.append(u64s(v["id"]))
    if st & S.STREAM_ID:
        out.append(u64s(v["stream_id"]))
    if st & S.CPU:
        out.append(struct.pack("<II", v["cpu"], v["res"]))
    if st & S.PERIOD:
        out.append(u64s(v["period"]))
    if st & S.READ:
        out.append(encode_read(rf, v["read"]))
    if st & S.CALLCHAIN:
        out.append(u64s(len(v["callchain"]), *v["callchain"]))
    if st & S.RAW:          # the kernel pads data so that size + data end on a u64
        out.append(struct.pack("<I", len(v["raw"])) + v["raw"])
    if st & S.BRANCH_STACK:
        out.append(u64s(len(v["branch_stack"])))
        if hw_idx:
            out.append(u64s(v["hw_idx"]))
        for entry in v["branch_stack"]:
            out.append(u64s(*entry))
    if st & S.REGS_USER:
        abi, regs = v["regs_user"]
        out.append(u64s(abi, *(regs if abi else ())))
    if st & S.STACK_USER:
        data, dyn_size = v["stack_user"]
        out.append(u64s(len(data)) + data + (u64s(dyn_size) if data else b""))
    if st & (S.WEIGHT | S.WEIGHT_STRUCT):
        out.append(u64s(v["weight"]))
    if st & S.DATA_SRC:
        out.append(u64s(v["data_src"]))
    if st & S.TRANSACTION:
        out.append(u64s(v["transaction"]))
    if st & S.REGS_INTR:
        abi, regs = v["regs_intr"]
        out.append(u64s(abi, *(regs if abi else ())))
    if st & S.PHYS_ADDR:
        out.append(u64s(v["phys_addr"]))
    if st & S.CGROUP:
        out.append(u64s(v["cgroup"]))
    if st & S.DATA_PAGE_SIZE:
        out.append(u64s(v["data_page_size"]))
    if st & S.CODE_PAGE_SIZE:
        out.append(u64s(v["code_page_size"]))
    if st & S.AUX:
        out.append(u64s(len(v["aux"])) + v["aux"])
    body = b"".join(out)
    assert len(body) % 8 == 0
    return body


def regs_dict(abi: int, regs: list[int], mask: int) -> dict:
    """What a script reads for REGS_USER / REGS_INTR: {'abi'} and, when taken, each register by
    name (REG_NAMES, then r<bit>) in mask bit order."""
    if not abi:
        return {"abi": 0}
    bits = [b for b in range(64) if mask >> b & 1]
    return {"abi": abi, **{(REG_NAMES[b] if b < len(REG_NAMES) else f"r{b}"): r for b, r in zip(bits, regs)}}


def expected_fields(st: int, v: dict, ru: int = 0, ri: int = 0) -> dict:
    """Each sample field a script sees, by the name base.py gives it, with its Python value."""
    scalars = {S.IDENTIFIER: "identifier", S.IP: "ip", S.TIME: "time", S.ADDR: "addr", S.ID: "id",
               S.STREAM_ID: "stream_id", S.PERIOD: "period", S.WEIGHT: "weight",
               S.WEIGHT_STRUCT: "weight", S.DATA_SRC: "data_src", S.TRANSACTION: "transaction",
               S.PHYS_ADDR: "phys_addr", S.CGROUP: "cgroup", S.DATA_PAGE_SIZE: "data_page_size",
               S.CODE_PAGE_SIZE: "code_page_size"}
    out = {name: v[name] for bit, name in scalars.items() if st & bit}
    if st & S.TID:
        out.update(pid=v["pid"], tid=v["tid"])
    if st & S.CPU:
        out["cpu"] = v["cpu"]
    if st & S.READ:
        out["read"] = v["read"]
    if st & S.CALLCHAIN:
        out["callchain"] = [f"frame {f:#x}" for f in v["callchain"]]     # through the hook below
    if st & S.RAW:
        out["raw"] = v["raw"]
    if st & S.BRANCH_STACK:
        out["branch_stack"] = b"".join(u64s(*e) for e in v["branch_stack"])
    if st & S.REGS_USER:
        out["regs_user"] = regs_dict(*v["regs_user"], ru)
    if st & S.STACK_USER:
        data, dyn_size = v["stack_user"]
        out["stack_user"] = data[:dyn_size]
    if st & S.REGS_INTR:
        out["regs_intr"] = regs_dict(*v["regs_intr"], ri)
    if st & S.AUX:
        out["aux"] = v["aux"]
    return out


def resolve_frames(cls, pid, frames, event=None):
    return [f"frame {f:#x}" for f in frames]


def random_read(rng: random.Random, rf: int) -> dict:
    val = lambda: rng.getrandbits(64)     # noqa: E731
    times = {k: val() for k, bit in (("time_enabled", F.TOTAL_TIME_ENABLED),
                                     ("time_running", F.TOTAL_TIME_RUNNING)) if rf & bit}
    ids = lambda: {k: val() for k, bit in (("id", F.ID), ("lost", F.LOST)) if rf & bit}    # noqa: E731
    if rf & F.GROUP:
        nr = rng.randrange(4)
        return {"nr": nr, **times, "cntr": [{"value": val(), **ids()} for _ in range(nr)]}
    return {"value": val(), **times, **ids()}


def random_values(rng: random.Random, rf: int, ru: int, ri: int) -> dict:
    """A value for every member: distinct random words, so a member read one word off shows."""
    w = lambda: rng.getrandbits(64)     # noqa: E731
    v = {k: w() for k in ("identifier", "ip", "time", "addr", "id", "stream_id", "period", "weight",
                          "data_src", "transaction", "phys_addr", "cgroup", "data_page_size",
                          "code_page_size", "hw_idx")}
    v.update(pid=rng.getrandbits(32), tid=rng.getrandbits(32), cpu=rng.getrandbits(32), res=rng.getrandbits(32))
    v["read"] = random_read(rng, rf)
    v["callchain"] = [w() for _ in range(rng.randrange(5))]
    v["raw"] = rng.randbytes(rng.randrange(0, 5) * 8 + 4)
    v["branch_stack"] = [(w(), w(), w()) for _ in range(rng.randrange(3))]
    v["regs_user"] = (rng.choice((0, ABI_64)), [w() for _ in range(bin(ru).count("1"))])
    v["regs_intr"] = (rng.choice((0, ABI_64)), [w() for _ in range(bin(ri).count("1"))])
    size = rng.randrange(0, 4) * 8
    v["stack_user"] = (rng.randbytes(size), rng.randrange(size + 1))
    v["aux"] = rng.randbytes(rng.randrange(0, 3) * 8)
    return v


# -- driving the Reader ---------------------------------------------------------------------------

def sample_class(st: int, rf: int = 0, ru: int = 0, ri: int = 0, hw_idx: bool = False, handler=None):
    """The EventClass a run makes for a profiler's samples (run/events.py), with our layout."""
    samples = SampleEvents(st, rf, ru, ri, sample_fields(st), render=str)
    return _ring.EventClass("test:samples", handler, sample_field_specs(samples), None,
                            sample=(st, rf, ru, ri, hw_idx), reg_names=REG_NAMES)


@contextmanager
def sample_ring(st: int, rf: int = 0, ru: int = 0, ri: int = 0, hw_idx: bool = False, *,
                data_pages: int = 1, start: int = 0, cpu: int = 7, kind=_ring.PERF_RING_SAMPLES,
                classes=None, lost_handler=None):
    """(reader, ring, events): a Reader over one hand-built perf ring whose samples go to events."""
    events: list = []
    if classes is None:
        classes = [sample_class(st, rf, ru, ri, hw_idx, events.append)]
    ring = HandBuiltRing(data_pages, start)
    reader = _ring.Reader(classes, lost_handler)
    try:
        index = reader.add_perf_ring(ring.fd, data_pages, kind, 0, cpu, (st, rf, ru, ri, hw_idx))
        assert index == 0
        yield reader, ring, events
    finally:
        reader.close()
        ring.close()


def sample_values_of(event) -> dict:
    return {k: v for k, v in event.to_dict().items() if k not in BUILTINS}


# -- every member, decoded ------------------------------------------------------------------------

ALL_MEMBERS = (S.IDENTIFIER | S.IP | S.TID | S.TIME | S.ADDR | S.ID | S.STREAM_ID | S.CPU | S.PERIOD
               | S.READ | S.CALLCHAIN | S.RAW | S.BRANCH_STACK | S.REGS_USER | S.STACK_USER | S.DATA_SRC
               | S.TRANSACTION | S.REGS_INTR | S.PHYS_ADDR | S.CGROUP | S.DATA_PAGE_SIZE
               | S.CODE_PAGE_SIZE | S.AUX)
KERNEL_ORDER_NAMES = ["identifier", "ip", "pid", "tid", "time", "addr", "id", "stream_id", "cpu", "period",
                      "read", "callchain", "raw", "branch_stack", "regs_user", "stack_user", "weight",
                      "data_src", "transaction", "regs_intr", "phys_addr", "cgroup", "data_page_size",
                      "code_page_size", "aux"]


@pytest.mark.parametrize("weight", [S.WEIGHT, S.WEIGHT_STRUCT])
def test_every_member_at_once_decodes_to_its_value_in_kernel_order(weight):
    _ring.set_hooks(resolve_callchain=resolve_frames)
    st, rf, ru, ri = ALL_MEMBERS | weight, F.TOTAL_TIME_ENABLED | F.ID, 0b1101, 1 << 40 | 0b10
    v = {"identifier": 0x1D, "ip": 0xFFFFFFFF81001234, "pid": 4242, "tid": 4243,
         "time": 1_000_000_123, "addr": 0x7F0000001000, "id": 0x1D, "stream_id": 0x5D, "cpu": 3,
         "res": 0xDEAD, "period": 997,
         "read": {"value": 0x1111, "time_enabled": 0x2222, "id": 0x1D},
         "callchain": [0xFFFFFFFFFFFFFF80, 0xFFFFFFFF81000010, 0xFFFFFFFFFFFFFE00, 0x401000],
         "raw": b"RAWDATA-0123", "hw_idx": 0,
         "branch_stack": [(0x401000, 0x401100, 0x1), (0x401200, 0x401300, 0x2)],
         "regs_user": (ABI_64, [10, 12, 13]), "stack_user": (bytes(range(24)), 20),
         "weight": 0x0003000200000001, "data_src": 0xD5, "transaction": 0x7A, "regs_intr": (ABI_64, [21, 240]),
         "phys_addr": 0x12345000, "cgroup": 0xC6, "data_page_size": 4096, "code_page_size": 2 << 20,
         "aux": b"AUXAUXAUXAUXAUXA"}
    with sample_ring(st, rf, ru, ri) as (reader, ring, events):
        ring.write(record(PERF_RECORD_SAMPLE, encode_sample(st, v, rf)))
        assert reader.drain() == 1
        (e,) = events
        assert list(e.keys()) == list(BUILTINS) + KERNEL_ORDER_NAMES
        assert sample_values_of(e) == {
            "identifier": 0x1D, "ip": 0xFFFFFFFF81001234, "pid": 4242, "tid": 4243, "time": 1_000_000_123,
            "addr": 0x7F0000001000, "id": 0x1D, "stream_id": 0x5D, "cpu": 3, "period": 997,
            "read": {"value": 0x1111, "time_enabled": 0x2222, "id": 0x1D},
            "callchain": ["frame 0xffffffffffffff80", "frame 0xffffffff81000010", "frame 0xfffffffffffffe00",
                          "frame 0x401000"],
            "raw": b"RAWDATA-0123",
            "branch_stack": u64s(0x401000, 0x401100, 1, 0x401200, 0x401300, 2),
            "regs_user": {"abi": 2, "r_zero": 10, "r_two": 12, "r_three": 13},
            "stack_user": bytes(range(20)),
            "weight": 0x0003000200000001, "data_src": 0xD5, "transaction": 0x7A,
            "regs_intr": {"abi": 2, "r_one": 21, "r40": 240},
            "phys_addr": 0x12345000, "cgroup": 0xC6, "data_page_size": 4096, "code_page_size": 2 << 20,
            "aux": b"AUXAUXAUXAUXAUXA"}
        assert (e._pid, e._tid, e._time, e._cpu, e._period) == (4242, 4243, 1_000_000_123, 3, 997)
        assert _ring.event_frames(e) == (0xFFFFFFFFFFFFFF80, 0xFFFFFFFF81000010, 0xFFFFFFFFFFFFFE00, 0x401000)
        assert e._callchain == e.callchain
        assert reader.perf_ring_stats(0)["samples"] == 1


def test_without_tid_time_cpu_period_the_builtins_come_from_the_ring():
    st = S.IP | S.ADDR
    with sample_ring(st, cpu=5) as (reader, ring, events):
        ring.write(record(PERF_RECORD_SAMPLE, u64s(0xAAAA, 0xBBBB)))
        assert reader.drain() == 1
        (e,) = events
        assert (e._pid, e._tid, e._time, e._cpu, e._period) == (0, 0, 0, 5, 1)
        assert sample_values_of(e) == {"ip": 0xAAAA, "addr": 0xBBBB}
        assert e._callchain == [] and _ring.event_frames(e) == ()


@pytest.mark.parametrize("seed", range(40))
def test_random_combinations_of_members_decode_exactly(seed):
    rng = random.Random(seed)
    st = sum(bit for bit in (S.IDENTIFIER, S.IP, S.TID, S.TIME, S.ADDR, S.ID, S.STREAM_ID, S.CPU, S.PERIOD,
                             S.READ, S.CALLCHAIN, S.RAW, S.BRANCH_STACK, S.REGS_USER, S.STACK_USER,
                             S.DATA_SRC, S.TRANSACTION, S.REGS_INTR, S.PHYS_ADDR, S.CGROUP,
                             S.DATA_PAGE_SIZE, S.CODE_PAGE_SIZE, S.AUX) if rng.random() < 0.5)
    st |= rng.choice((0, S.WEIGHT, S.WEIGHT_STRUCT))
    st |= S.IP if not st else 0
    rf, hw_idx = rng.randrange(32), rng.random() < 0.5
    ru, ri = rng.getrandbits(8), rng.getrandbits(64)
    _ring.set_hooks(resolve_callchain=resolve_frames)
    values = [random_values(rng, rf, ru, ri) for _ in range(5)]
    with sample_ring(st, rf, ru, ri, hw_idx, data_pages=2, start=rng.randrange(0, 1 << 40, 8)) as (reader, ring, events):
        ring.write(*(record(PERF_RECORD_SAMPLE, encode_sample(st, v, rf, hw_idx)) for v in values))
        assert reader.drain() == 5
        assert ring.tail == ring.head
        assert [list(e.keys())[len(BUILTINS):] for e in events] == [[f.name for f in sample_fields(st)]] * 5
        assert [sample_values_of(e) for e in events] == [expected_fields(st, v, ru, ri) for v in values]
        assert [(e._pid, e._tid, e._time, e._cpu, e._period) for e in events] == [
            (v["pid"] if st & S.TID else 0, v["tid"] if st & S.TID else 0, v["time"] if st & S.TIME else 0,
             v["cpu"] if st & S.CPU else 7, v["period"] if st & S.PERIOD else 1) for v in values]
        assert [_ring.event_frames(e) for e in events] == [
            tuple(v["callchain"]) if st & S.CALLCHAIN else () for v in values]


@pytest.mark.parametrize("rf", range(32))
def test_every_read_format_shape(rf):
    # Single: {'value'} plus the subset of time_enabled, time_running, id, lost rf asks for.
    # Group: {'nr', [time_enabled, time_running], 'cntr': [{'value', [id, lost]}]}, here nr = 3.
    # CALLCHAIN follows READ: the reader must find the frames past either shape.
    st = S.TID | S.READ | S.CALLCHAIN
    n = iter(range(1, 100))
    if rf & F.GROUP:
        read = {"nr": 3}
        read.update({k: next(n) for k, bit in (("time_enabled", F.TOTAL_TIME_ENABLED),
                                               ("time_running", F.TOTAL_TIME_RUNNING)) if rf & bit})
        read["cntr"] = [{"value": next(n), **{k: next(n) for k, bit in (("id", F.ID), ("lost", F.LOST)) if rf & bit}}
                        for _ in range(3)]
        words = 1 + bin(rf & 3).count("1") + 3 * (1 + bin(rf & (F.ID | F.LOST)).count("1"))
    else:
        read = {"value": next(n)}
        read.update({k: next(n) for k, bit in (("time_enabled", F.TOTAL_TIME_ENABLED),
                                               ("time_running", F.TOTAL_TIME_RUNNING),
                                               ("id", F.ID), ("lost", F.LOST)) if rf & bit})
        words = 1 + bin(rf & ~F.GROUP).count("1")
    body = struct.pack("<II", 1, 2) + encode_read(rf, read) + u64s(2, 0xF1, 0xF2)
    assert len(body) == 8 + 8 * words + 24
    with sample_ring(st, rf) as (reader, ring, events):
        ring.write(record(PERF_RECORD_SAMPLE, body))
        assert reader.drain() == 1
        (e,) = events
        assert e.read == read
        assert list(e.read) == list(read)          # keys in the documented order
        assert _ring.event_frames(e) == (0xF1, 0xF2)


def test_a_group_read_with_no_members():
    rf = F.GROUP | F.TOTAL_TIME_RUNNING | F.ID
    with sample_ring(S.READ | S.PERIOD, rf) as (reader, ring, events):
        ring.write(record(PERF_RECORD_SAMPLE, u64s(50, 0, 77)))
        reader.drain()
        assert events[0].read == {"nr": 0, "time_running": 77, "cntr": []}
        assert events[0]._period == 50


@pytest.mark.parametrize("hw_idx", [False, True])
def test_branch_stack_with_and_without_hw_idx(hw_idx):
    # { u64 nr; { u64 hw_idx; } && PERF_SAMPLE_BRANCH_HW_INDEX; { u64 from, to, flags } lbr[nr]; }
    # The field is the entries, as base.py says ("branch records {from, to, flags} as u64s"),
    # with or without hw_idx before them; what follows must be found past both.
    st = S.BRANCH_STACK | S.DATA_SRC
    entries = [(0x1000, 0x2000, 0x11), (0x3000, 0x4000, 0x22), (0x5000, 0x6000, 0x33)]
    body = u64s(3) + (u64s(0x7) if hw_idx else b"") + b"".join(u64s(*e) for e in entries) + u64s(0xD5)
    with sample_ring(st, hw_idx=hw_idx) as (reader, ring, events):
        ring.write(record(PERF_RECORD_SAMPLE, body))
        assert reader.drain() == 1
        (e,) = events
        assert e.branch_stack == b"".join(u64s(*x) for x in entries)
        assert e.data_src == 0xD5


def test_regs_abi_none_takes_no_words():
    # { u64 abi; u64 regs[weight(mask)]; }: with abi PERF_SAMPLE_REGS_ABI_NONE (0) no regs follow.
    st = S.REGS_USER | S.REGS_INTR | S.PHYS_ADDR
    with sample_ring(st, ru=0b111, ri=0b11) as (reader, ring, events):
        ring.write(record(PERF_RECORD_SAMPLE, u64s(0, ABI_64, 5, 6, 0xAB)),
                   record(PERF_RECORD_SAMPLE, u64s(ABI_64, 1, 2, 3, 0, 0xCD)))
        assert reader.drain() == 2
        assert [(e.regs_user, e.regs_intr, e.phys_addr) for e in events] == [
            ({"abi": 0}, {"abi": 2, "r_zero": 5, "r_one": 6}, 0xAB),
            ({"abi": 2, "r_zero": 1, "r_one": 2, "r_two": 3}, {"abi": 0}, 0xCD)]


def test_stack_user_size_and_dyn_size():
    # { u64 size; char data[size]; u64 dyn_size; }, dyn_size only when size != 0; the field is the
    # dyn_size valid bytes (at most size).
    st = S.STACK_USER | S.CGROUP
    stack = bytes(range(1, 17))
    with sample_ring(st) as (reader, ring, events):
        ring.write(record(PERF_RECORD_SAMPLE, u64s(0, 0xC1)),
                   record(PERF_RECORD_SAMPLE, u64s(16) + stack + u64s(5, 0xC2)),
                   record(PERF_RECORD_SAMPLE, u64s(16) + stack + u64s(16, 0xC3)),
                   record(PERF_RECORD_SAMPLE, u64s(16) + stack + u64s(99, 0xC4)))
        assert reader.drain() == 4
        assert [(e.stack_user, e.cgroup) for e in events] == [
            (b"", 0xC1), (stack[:5], 0xC2), (stack, 0xC3), (stack, 0xC4)]


def test_aux_and_raw_sizes():
    st = S.RAW | S.CODE_PAGE_SIZE | S.AUX
    with sample_ring(st) as (reader, ring, events):
        ring.write(record(PERF_RECORD_SAMPLE, struct.pack("<I", 4) + b"abcd" + u64s(4096, 0)),
                   record(PERF_RECORD_SAMPLE, struct.pack("<I", 12) + b"0123456789ab" + u64s(8192, 8) + b"AUXBYTES"))
        assert reader.drain() == 2
        assert [(e.raw, e.code_page_size, e.aux) for e in events] == [
            (b"abcd", 4096, b""), (b"0123456789ab", 8192, b"AUXBYTES")]


def test_a_sample_shorter_than_its_members_is_skipped_and_counted():
    st = S.TID | S.CALLCHAIN
    with sample_ring(st) as (reader, ring, events):
        ring.write(record(PERF_RECORD_SAMPLE, struct.pack("<II", 1, 1) + u64s(5, 0xA)),   # 5 frames, 1 there
                   record(PERF_RECORD_SAMPLE, b""),                                      # not even TID
                   record(PERF_RECORD_SAMPLE, struct.pack("<II", 2, 2) + u64s(1, 0xB)))
        assert reader.drain() == 3
        assert [(e._pid, _ring.event_frames(e)) for e in events] == [(2, (0xB,))]
        assert reader.records == 1
        stats = reader.perf_ring_stats(0)
        assert (stats["samples"], stats["corrupt"]) == (3, 2)
        assert ring.tail == ring.head


def test_a_member_read_past_a_short_sample_reads_as_empty():
    # The Record (TID..CALLCHAIN) fits, a later member does not: the sample is delivered and the
    # missing member reads as its empty value, as a truncated tracepoint field does.
    st = S.TID | S.RAW | S.AUX
    with sample_ring(st) as (reader, ring, events):
        ring.write(record(PERF_RECORD_SAMPLE, struct.pack("<II", 1, 1) + struct.pack("<I", 100) + b"\0" * 4),
                   record(PERF_RECORD_SAMPLE, struct.pack("<II", 2, 2) + struct.pack("<I", 8) + b"abcd"))
        assert reader.drain() == 2
        assert [(e.pid, e.raw, e.aux) for e in events] == [(1, b"", b""), (2, b"", b"")]


@pytest.mark.parametrize("st, rf, message", [
    (S.IP | 1 << 25, 0, "sample_type"),
    (S.IP | 1 << 63, 0, "sample_type"),
    (S.WEIGHT | S.WEIGHT_STRUCT, 0, "WEIGHT"),
    (S.READ, 1 << 5, "read_format"),
])
def test_a_layout_the_reader_cannot_walk_is_refused(st, rf, message):
    # A member the reader does not know would shift every member after it: refuse, do not guess.
    with pytest.raises(ValueError, match=message):
        _ring.EventClass("test:x", None, [], None, sample=(st, rf, 0, 0, False))
    ring = HandBuiltRing()
    reader = _ring.Reader([sample_class(S.IP)])
    try:
        with pytest.raises(ValueError, match=message):
            reader.add_perf_ring(ring.fd, 1, _ring.PERF_RING_SAMPLES, 0, 0, (st, rf, 0, 0, False))
    finally:
        reader.close()
        ring.close()


# -- wrapping the ring's end ----------------------------------------------------------------------

def numbered_sample(i: int, frames: int = 0) -> bytes:
    st_body = struct.pack("<II", 100 + i, 200 + i) + u64s(1000 + i, 0x400000 + i)
    return record(PERF_RECORD_SAMPLE, st_body + u64s(frames, *range(0xF00 + i, 0xF00 + i + frames)))


def numbered_class_st() -> int:
    return S.TID | S.TIME | S.ADDR | S.CALLCHAIN    # TID, TIME, ADDR, CALLCHAIN: numbered_sample's order


def check_numbered(e, i: int, frames: int = 0) -> None:
    assert (e._pid, e._tid, e._time, e.addr, _ring.event_frames(e)) == (
        100 + i, 200 + i, 1000 + i, 0x400000 + i, tuple(range(0xF00 + i, 0xF00 + i + frames)))


@pytest.mark.parametrize("at_end", [8, 16, 24, 40, 48])
def test_a_record_wrapping_the_end_is_read_whole(at_end):
    # 48-byte records starting at_end bytes before the end: header alone at the end (8), header
    # and part of the body (16 .. 40), ending exactly at the end (48).
    st = numbered_class_st()
    with sample_ring(st, start=PAGE - at_end) as (reader, ring, events):
        ring.write(numbered_sample(1, frames=1), numbered_sample(2, frames=1))
        assert ring.head - (PAGE - at_end) == 2 * 48
        assert reader.drain() == 2
        check_numbered(events[0], 1, 1)
        check_numbered(events[1], 2, 1)
        assert ring.tail == ring.head == PAGE - at_end + 96


def test_records_wrap_the_ring_many_times_with_exact_tails():
    # A one-page ring refilled and drained 60 times over about 30 wraps; sizes vary, so records
    # split at every 8-byte position across the end. data_tail must end each drain at data_head.
    st = numbered_class_st()
    rng = random.Random(7)
    with sample_ring(st, start=(1 << 32) - 64) as (reader, ring, events):
        i = 0
        for _ in range(60):
            batch = []
            while sum(len(r) for _, _, r in batch) < PAGE - 200:
                frames = rng.randrange(20)
                batch.append((i, frames, numbered_sample(i, frames)))
                i += 1
            ring.write(*(r for _, _, r in batch))
            before = len(events)
            assert reader.drain() == len(batch)
            assert ring.tail == ring.head
            for e, (n, frames, _) in zip(events[before:], batch):
                check_numbered(e, n, frames)
        assert len(events) == i and ring.head > (1 << 32) + 25 * PAGE
        assert reader.perf_ring_stats(0)["samples"] == i


def test_a_drain_of_more_than_a_signal_check_stride_stores_the_final_tail():
    st = numbered_class_st()
    with sample_ring(st, data_pages=32) as (reader, ring, events):
        ring.write(*(numbered_sample(i) for i in range(2500)))
        assert reader.drain() == 2500
        assert ring.tail == ring.head == 2500 * 40
        check_numbered(events[1234], 1234)
        assert reader.drain() == 0


def test_a_long_drain_hands_space_back_as_it_goes():
    # Every 1024 records the reader stores data_tail, so the kernel can write while a drain of a
    # big ring is still in handlers.
    st = numbered_class_st()
    seen = []
    cls = sample_class(st, handler=lambda e: seen.append(ring.tail))
    with sample_ring(st, data_pages=32, classes=[cls]) as (reader, ring, _):
        ring.write(*(numbered_sample(i) for i in range(2100)))
        assert reader.drain() == 2100
        assert (seen[1023], seen[1024], seen[2047], seen[2048]) == (0, 1024 * 40, 1024 * 40, 2048 * 40)
        assert ring.tail == 2100 * 40


def test_a_stopped_drain_leaves_the_rest_for_the_next():
    st = numbered_class_st()
    events = []

    def handler(e):
        events.append(e)
        if len(events) == 2:
            reader.stop()

    cls = sample_class(st, handler=handler)
    with sample_ring(st, classes=[cls]) as (reader, ring, _):
        ring.write(*(numbered_sample(i) for i in range(5)))
        assert reader.drain() == 2
        assert ring.tail == 2 * 40


# -- other records ---------------------------------------------------------------------------------

def lost_body(lost: int, sample_id: bytes = b"") -> bytes:
    return u64s(0x1D, lost) + sample_id     # { u64 id; u64 lost; struct sample_id; }


def test_lost_records_are_losses_on_a_sample_ring():
    calls = []
    st = numbered_class_st()
    with sample_ring(st, lost_handler=lambda start, end: calls.append((start, end))) as (reader, ring, events):
        ring.write(numbered_sample(0), record(PERF_RECORD_LOST, lost_body(17)), numbered_sample(1),
                   record(PERF_RECORD_LOST, lost_body(0)), record(PERF_RECORD_LOST, lost_body(3)))
        assert reader.drain() == 5
        assert (reader.lost, calls, len(events)) == (20, [(0, 0), (0, 0)], 2)
        assert reader.perf_ring_stats(0)["lost_records"] == 20


def test_a_lost_record_orders_by_its_sample_id_time():
    # attr.sample_id_all: the trailer holds TID TIME ID STREAM_ID CPU IDENTIFIER of sample_type,
    # in that order. With --order the loss sits between the events by its time; its start is the
    # time of that CPU's previous record.
    st = S.IDENTIFIER | S.TID | S.TIME | S.ID | S.STREAM_ID | S.CPU
    calls = []

    def sample(t, cpu):
        return record(PERF_RECORD_SAMPLE, u64s(9) + struct.pack("<II", 1, 1) + u64s(t, 9, 9) + struct.pack("<II", cpu, 0))

    cls = sample_class(st, handler=lambda e: calls.append(("event", e._time, e._cpu)))
    with sample_ring(st, classes=[cls], lost_handler=lambda s, e: calls.append(("lost", s, e))) as (reader, ring, _):
        trailer = struct.pack("<II", 1, 1) + u64s(150, 9, 9) + struct.pack("<II", 2, 0) + u64s(9)
        ring.write(sample(100, 2), sample(120, 3), record(PERF_RECORD_LOST, lost_body(4, trailer)),
                   sample(200, 2))
        reader.drain(ordered=True, flush=True)
        assert calls == [("event", 100, 2), ("event", 120, 3), ("lost", 100, 150), ("event", 200, 2)]
        assert reader.lost == 4


def test_lost_records_are_only_tallied_on_a_bpf_output_ring():
    # --perf-buffer: the program counts what it could not write and says so in its next record
    # (ep_sample.lost); the kernel's PERF_RECORD_LOST counts the same records again.
    fmt = support.fixture_format("sched_sched_wakeup")
    kept, calls = [], []
    cls = _ring.EventClass(fmt.full_name, kept.append, field_specs(fmt), support.event_spec(fmt))
    raw = struct.pack("<HBBi", 374, 0, 0, 77) + struct.pack("<16siii", b"bash", 8738, 120, 1)
    ep = struct.pack("<QIIIHHII", 5000, 77, 78, 1, 0, 0, 6, len(raw))
    data = ep + raw
    data += b"\0" * (-(4 + len(data)) % 8)
    ring = HandBuiltRing()
    reader = _ring.Reader([cls], lambda s, e: calls.append((s, e)))
    try:
        reader.add_perf_ring(ring.fd, 1, _ring.PERF_RING_BPF_OUTPUT, 0, 0, (S.RAW, 0, 0, 0, False))
        ring.write(record(PERF_RECORD_LOST, lost_body(6)),
                   record(PERF_RECORD_SAMPLE, struct.pack("<I", len(data)) + data))
        assert reader.drain() == 2
        assert reader.perf_ring_stats(0)["lost_records"] == 6
        assert (reader.lost, calls) == (6, [(0, 0)])      # once, from ep_sample.lost
        (e,) = kept
        assert (e.comm, e.pid, e._pid, e._tid, e._time, e._cpu) == ("bash", 8738, 77, 78, 5000, 1)
    finally:
        reader.close()
        ring.close()


def test_throttle_and_unthrottle_are_tallied():
    st = numbered_class_st()
    throttle = u64s(500, 0x1D, 0x5D)       # { u64 time; u64 id; u64 stream_id; struct sample_id; }
    with sample_ring(st) as (reader, ring, events):
        ring.write(record(PERF_RECORD_THROTTLE, throttle), numbered_sample(0),
                   record(PERF_RECORD_UNTHROTTLE, throttle), record(PERF_RECORD_THROTTLE, throttle),
                   record(PERF_RECORD_THROTTLE, throttle))
        assert reader.drain() == 5
        assert reader.perf_ring_stats(0) == {"samples": 1, "lost_records": 0, "throttled": 3,
                                             "unthrottled": 1, "corrupt": 0}
        assert len(events) == 1 and reader.lost == 0


def test_unknown_record_types_are_skipped():
    st = numbered_class_st()
    with sample_ring(st, start=PAGE - 16) as (reader, ring, events):
        ring.write(record(PERF_RECORD_MMAP, b"\xee" * 64), numbered_sample(0),
                   record(PERF_RECORD_COMM, b"\xff" * 24), record(PERF_RECORD_LOST_SAMPLES, u64s(9)),
                   record(0xFFFF, b""), record(70, b"\x01" * 8, misc=0xFFFF), numbered_sample(1))
        assert reader.drain() == 7
        assert [e._time for e in events] == [1000, 1001]
        assert reader.perf_ring_stats(0) == {"samples": 2, "lost_records": 0, "throttled": 0,
                                             "unthrottled": 0, "corrupt": 0}
        assert reader.lost == 0 and ring.tail == ring.head


# -- corrupt rings ---------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [0, 4, 12, 8 + PAGE, 0xFFF8])
def test_a_corrupt_header_skips_the_ring_and_is_reported(size):
    # size 0 would loop forever, an odd size misaligns every header after it, a size larger
    # than the ring would copy past its end: the reader skips what the ring holds, counts it,
    # and reads the next records the kernel writes.
    st = numbered_class_st()
    with sample_ring(st, start=PAGE - 24) as (reader, ring, events):
        bad = struct.pack("<IHH", PERF_RECORD_SAMPLE, 0, size) + b"\xee" * 8
        ring.write(numbered_sample(0), bad)
        ring.publish(ring.head + (1 << 16))     # data_head far enough for any size to "fit"
        assert reader.drain() == 1
        assert ring.tail == ring.head
        assert [e._time for e in events] == [1000]
        assert reader.perf_ring_stats(0)["corrupt"] == 1
        ring.write(numbered_sample(1))
        assert reader.drain() == 1
        check_numbered(events[1], 1)


def test_a_record_running_past_data_head_is_reported():
    st = numbered_class_st()
    with sample_ring(st) as (reader, ring, events):
        ring.write(numbered_sample(0), numbered_sample(1)[:32])    # a 40-byte record, head after 32
        assert reader.drain() == 1
        assert reader.perf_ring_stats(0)["corrupt"] == 1
        assert ring.tail == ring.head


def test_a_misaligned_data_tail_is_reported_not_followed():
    # data_tail is ours; if it ever is not a multiple of 8 a header could straddle the end.
    st = numbered_class_st()
    with sample_ring(st, start=PAGE - 4) as (reader, ring, events):
        ring.write(numbered_sample(0))
        assert reader.drain() == 0
        assert (events, reader.perf_ring_stats(0)["corrupt"], ring.tail) == ([], 1, ring.head)


def test_a_bad_data_area_is_refused():
    ring = HandBuiltRing(2)
    reader = _ring.Reader([sample_class(S.IP)])
    try:
        for off, size in ((PAGE, 3 * PAGE), (PAGE, 3 * PAGE // 2), (2 * PAGE, 2 * PAGE)):
            struct.pack_into("<QQ", ring.map, DATA_OFFSET, off, size)
            with pytest.raises(ValueError, match="power of two inside the mapping"):
                reader.add_perf_ring(ring.fd, 2, _ring.PERF_RING_SAMPLES, 0, 0, (S.IP, 0, 0, 0, False))
        with pytest.raises(ValueError, match="data_pages must be a power of two"):
            reader.add_perf_ring(ring.fd, 3, _ring.PERF_RING_SAMPLES, 0, 0, (S.IP, 0, 0, 0, False))
    finally:
        reader.close()
        ring.close()
