"""What every profiler source shares: its samples' fields, its perf events, its options.

A profiler (``profile``, ``page-faults``, ``breakpoint``: one module each) turns its selector
into a ``ProfilerPlan``: the perf events to open on every CPU or task of the run, the
``sample_type`` they record, and how their samples look to a script (``SampleEvents``, which
``print()`` and ``help`` read too). ``resolve/profiler.py`` makes the run's spec of it;
``sources/perf.py`` opens the events.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

from ebpfprof.kernel.perf_abi import Flag, PerfEventAttr, ReadFormat, Sample

__all__ = ["SampleField", "SampleEvents", "PerfEventPlan", "ProfilerPlan", "sample_fields",
           "REG_NAMES", "USER_REGS_MASK", "INTR_REGS_MASK", "READ_FORMAT"]

# PERF_SAMPLE_* members as fields, in the order the kernel writes them: (bit, field names).
# TID and CPU are two u32 each; the second u32 of CPU is reserved and not a field.
_MEMBERS: tuple[tuple[int, tuple[str, ...], str, str], ...] = (
    (Sample.IDENTIFIER, ("identifier",), "int", "the event's id (PERF_SAMPLE_IDENTIFIER)"),
    (Sample.IP, ("ip",), "int", "instruction pointer where the sample was taken"),
    (Sample.TID, ("pid", "tid"), "int", "process and thread id"),
    (Sample.TIME, ("time",), "int", "CLOCK_MONOTONIC ns (the clock of _time)"),
    (Sample.ADDR, ("addr",), "int", "data address: the faulting or watched address"),
    (Sample.ID, ("id",), "int", "the event's id"),
    (Sample.STREAM_ID, ("stream_id",), "int", "the id of the event it was inherited from"),
    (Sample.CPU, ("cpu",), "int", "CPU"),
    (Sample.PERIOD, ("period",), "int", "events (or ns of cpu-clock) this sample stands for"),
    (Sample.READ, ("read",), "dict", "counter values (keys from read_format: read_keys)"),
    (Sample.CALLCHAIN, ("callchain",), "list", "frames {'addr','symbol','offset','kernel','dso'}, innermost first"),
    (Sample.RAW, ("raw",), "bytes", "raw data of the event"),
    (Sample.BRANCH_STACK, ("branch_stack",), "bytes", "branch records {from, to, flags} as u64s"),
    (Sample.REGS_USER, ("regs_user",), "dict", "user registers at the sample: {'abi', 'ax', ..., 'ip', 'sp'}"),
    (Sample.STACK_USER, ("stack_user",), "bytes", "a copy of the user stack"),
    (Sample.WEIGHT, ("weight",), "int", "cost of the sampled instruction (PMU)"),
    (Sample.WEIGHT_STRUCT, ("weight",), "int", "cost of the sampled instruction (PMU)"),
    (Sample.DATA_SRC, ("data_src",), "int", "data source (PMU)"),
    (Sample.TRANSACTION, ("transaction",), "int", "transaction flags (PMU)"),
    (Sample.REGS_INTR, ("regs_intr",), "dict", "registers where the sample was taken: {'abi', 'ax', ..., 'ip'}"),
    (Sample.PHYS_ADDR, ("phys_addr",), "int", "physical data address"),
    (Sample.CGROUP, ("cgroup",), "int", "cgroup id"),
    (Sample.DATA_PAGE_SIZE, ("data_page_size",), "int", "page size of addr"),
    (Sample.CODE_PAGE_SIZE, ("code_page_size",), "int", "page size of ip"),
    (Sample.AUX, ("aux",), "bytes", "AUX area data"),
)

# Register names by perf_regs bit (arch/*/include/uapi/asm/perf_regs.h).
_X86_64_REGS = ("ax", "bx", "cx", "dx", "si", "di", "bp", "sp", "ip", "flags", "cs", "ss",
                "ds", "es", "fs", "gs", "r8", "r9", "r10", "r11", "r12", "r13", "r14", "r15")
_ARM64_REGS = tuple(f"x{i}" for i in range(29)) + ("x29", "lr", "sp", "pc")
_MACHINE = os.uname().machine
REG_NAMES: tuple[str, ...] = {"x86_64": _X86_64_REGS, "aarch64": _ARM64_REGS}.get(_MACHINE, ())
# Every general register; x86-64 refuses ds/es/fs/gs in 64-bit samples.
USER_REGS_MASK = {"x86_64": 0xFF0FFF, "aarch64": (1 << 33) - 1}.get(_MACHINE, 0)
INTR_REGS_MASK = USER_REGS_MASK

# What a sample's `read` holds: the count, how long the event was enabled and running, and
# the samples it lost (Linux 6.0+; the run also reads it at the end, see sources/perf.py).
READ_FORMAT = ReadFormat.TOTAL_TIME_ENABLED | ReadFormat.TOTAL_TIME_RUNNING | ReadFormat.LOST


@dataclass(frozen=True)
class SampleField:
    """One field of a sample: the member it reads (its PERF_SAMPLE_* bit) and what it is."""

    name: str
    bit: int                   # bit number of the PERF_SAMPLE_* member
    half: int                  # 4: the second u32 of TID (tid); else 0
    python_type: str
    meaning: str


def read_keys(read_format: int) -> str:
    """The keys of a sample's ``read`` dict for ``read_format``, as help and the docs show them."""
    from ebpfprof.kernel.perf_abi import ReadFormat

    times = [name for bit, name in ((ReadFormat.TOTAL_TIME_ENABLED, "'time_enabled'"),
                                    (ReadFormat.TOTAL_TIME_RUNNING, "'time_running'")) if read_format & bit]
    per = ["'value'"] + [name for bit, name in ((ReadFormat.ID, "'id'"), (ReadFormat.LOST, "'lost'"))
                         if read_format & bit]
    if read_format & ReadFormat.GROUP:
        return "{" + ", ".join(["'nr'", *times, "'cntr': [{" + ", ".join(per) + "}, ...]"]) + "}"
    return "{" + ", ".join(per[:1] + times + per[1:]) + "}"


def sample_fields(sample_type: int, read_format: int = 0) -> tuple[SampleField, ...]:
    """The fields a sample of ``sample_type`` has, in the kernel's order."""
    out: list[SampleField] = []
    for bit, names, ptype, meaning in _MEMBERS:
        if bit == Sample.READ:
            meaning = f"counter values: {read_keys(read_format)}"
        if sample_type & bit and not any(f.name == names[0] for f in out):
            for i, name in enumerate(names):
                out.append(SampleField(name, bit.bit_length() - 1, 4 * i, ptype, meaning))
    return tuple(out)


@dataclass(frozen=True)
class SampleEvents:
    """How one profiler selector's samples look to a script (``EventSpec.sample``)."""

    sample_type: int
    read_format: int
    regs_user_mask: int
    regs_intr_mask: int
    fields: tuple[SampleField, ...]
    # print()'s text after "name: " for one event (the profiler's line)
    render: Callable[[object], str]
    # help's comment on each field, beyond its meaning (e.g. what -g adds)
    notes: tuple[str, ...] = ()
    # print()'s name before "name: " when the selector has no alias (perf-prof's "page-fault"),
    # else the event's _event
    print_name: str | None = None

    @property
    def layout(self) -> tuple[int, int, int, int, bool]:
        """The reader's ``sample=`` tuple (EventClass, Reader.add_perf_ring)."""
        return (self.sample_type, self.read_format, self.regs_user_mask, self.regs_intr_mask, False)


@dataclass(frozen=True)
class PerfEventPlan:
    """One perf event to open on each CPU (or task) of the run."""

    type: int
    config: int
    label: str                         # "cpu-clock", "0x601040/4:w": for -v and print()
    sample_period: int = 1
    freq: bool = False                 # sample_period is a frequency (Hz)
    flags: int = 0                     # Flag.EXCLUDE_* and the like
    bp_type: int = 0
    bp_addr: int = 0
    bp_len: int = 0

    def attr(self, events: SampleEvents, *, wakeup_bytes: int, inherit: bool,
             max_stack: int) -> PerfEventAttr:
        """The perf_event_attr: disabled until the run starts, stamped with CLOCK_MONOTONIC
        (the clock of bpf_ktime_get_ns(), so --order merges it with BPF events), waking the
        reader once wakeup_bytes are in its ring, never per sample."""
        flags = (self.flags | Flag.DISABLED | Flag.SAMPLE_ID_ALL | Flag.USE_CLOCKID | Flag.WATERMARK
                 | (Flag.FREQ if self.freq else 0) | (Flag.INHERIT if inherit else 0))
        return PerfEventAttr(
            type=self.type, config=self.config, sample_period=self.sample_period,
            sample_type=events.sample_type, read_format=events.read_format, flags=flags,
            wakeup_events=wakeup_bytes, bp_type=self.bp_type, config1=self.bp_addr,
            config2=self.bp_len, sample_regs_user=events.regs_user_mask,
            sample_regs_intr=events.regs_intr_mask, clockid=time.CLOCK_MONOTONIC,
            sample_max_stack=max_stack if events.sample_type & Sample.CALLCHAIN else 0)


@dataclass(frozen=True)
class ProfilerPlan:
    """What a profiler selector asks for."""

    events: tuple[PerfEventPlan, ...]
    samples: SampleEvents
    budget: int | None = None          # -N in its options: this source stops after so many
    mmap_pages: int | None = None      # -m in its options: its rings' pages per CPU
    title_note: str = ""               # help's heading: "cpu-clock at 997 Hz"
    extra: dict = field(default_factory=dict)


def callchain_choice(sel, values: dict, config) -> tuple[int, int, str]:
    """(sample_type bits, attr flags, note) for the callchain options of one profiler selector:
    its -g, /stack/ or the run's -g; its --[no-]user/kernel-callchain, else the run's."""
    if not (values["call_graph"] or sel.stack or config.call_graph):
        return 0, 0, ""
    kernel = values["kernel_callchain"] if values["kernel_callchain"] is not None else config.kernel_callchain
    user = values["user_callchain"] if values["user_callchain"] is not None else config.user_callchain
    flags = (0 if kernel else Flag.EXCLUDE_CALLCHAIN_KERNEL) | (0 if user else Flag.EXCLUDE_CALLCHAIN_USER)
    return Sample.CALLCHAIN, flags, "callchains" + ("" if kernel else ", no kernel frames") + (
        "" if user else ", no user frames")


def exclude_flags(values: dict) -> int:
    return (Flag.EXCLUDE_USER if values["exclude_user"] else 0) | (
        Flag.EXCLUDE_KERNEL if values["exclude_kernel"] else 0)


def symbolized(pid: int, addr: int) -> str:
    """``sym+0xoff`` of an address, or nothing when it cannot be named."""
    from ebpfprof.symbols import default_resolver

    symbol, offset, _dso = default_resolver().address(pid, addr)
    return f"{symbol}+0x{offset:x}" if symbol != "Unknown" else ""
