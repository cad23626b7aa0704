"""The record of a probe event, described as a tracefs format (so decoding, filters, print()
and help treat it like a tracepoint's).

perf's fields first (``__probe_ip``; on return ``__probe_func``, ``__probe_ret_ip``), then
ours: ``arg1..arg6`` from the calling convention's argument registers (1-based, like ftrace's
``$argN`` and BCC's trace), ``retval`` on return. All are unsigned 64-bit: a script reads one
as signed with ``ctypes.c_int64(event.arg1).value``; a filter compares them unsigned (a
negative int is ``arg1 > 0x7fffffffffffffff``).

A captured string argument (``str=N``, see docs/probes.md) adds ``argN_str`` (char[STR_LEN]).
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ebpfprof.kernel.event_format import EventFormat, parse_format

__all__ = ["ARG_COUNT", "STR_LEN", "ProbeRegisters", "probe_registers", "probe_format",
           "ProbeFieldPlan"]

ARG_COUNT = 6
STR_LEN = 128             # bytes kept of a captured string, NUL included

_COMMON = """\
	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
	field:int common_pid;	offset:4;	size:4;	signed:1;
"""


@dataclass(frozen=True)
class ProbeRegisters:
    """Where the calling convention keeps a probe's values: pt_regs member names."""

    args: tuple[str, ...]          # arg1..arg6
    retval: str
    ip: str


# x86-64 System V: rdi rsi rdx rcx r8 r9, rax. arm64 AAPCS64: x0..x5, x0 (pt_regs: regs[N]).
_REGISTERS = {
    "x86_64": ProbeRegisters(("di", "si", "dx", "cx", "r8", "r9"), "ax", "ip"),
    "aarch64": ProbeRegisters(tuple(f"regs[{i}]" for i in range(6)), "regs[0]", "pc"),
}


def probe_registers(machine: str | None = None) -> ProbeRegisters | None:
    """This machine's registers (None: an architecture ebpfprof does not know yet)."""
    return _REGISTERS.get(machine or os.uname().machine)


@dataclass(frozen=True)
class ProbeFieldPlan:
    """One u64 of the record after the common header: its name and what fills it."""

    name: str
    source: str                    # "reg:<pt_regs member>", "const:<value>"
    meaning: str                   # for help and the docs


def _fields(kind: str, regs: ProbeRegisters, func_address: int) -> list[ProbeFieldPlan]:
    if kind.endswith("retprobe"):
        return [ProbeFieldPlan("__probe_func", f"const:{func_address}",
                               "the probed function's address in its file (perf: in the process)"),
                ProbeFieldPlan("__probe_ret_ip", f"reg:{regs.ip}", "where the function returns to"),
                ProbeFieldPlan("retval", f"reg:{regs.retval}", "the return value (unsigned 64-bit)")]
    return [ProbeFieldPlan("__probe_ip", f"reg:{regs.ip}", "the probed instruction's address"),
            *(ProbeFieldPlan(f"arg{i + 1}", f"reg:{reg}", f"argument {i + 1} (register {reg}, unsigned 64-bit)")
              for i, reg in enumerate(regs.args))]


# A probe has no tracefs id; print() (libtraceevent) finds a record's format by its
# common_type, so each probe of a run gets one of its own, above the tracepoints' ids.
PROBE_ID_BASE = 0xF000


def probe_format(kind: str, name: str, regs: ProbeRegisters, *, func_address: int = 0,
                 strings: tuple[int, ...] = (), index: int = 0) -> tuple[EventFormat, list[ProbeFieldPlan]]:
    """The format of a ``kind`` probe named ``name`` (its FUNC or alias), and the plan of its
    u64 fields in record order. ``strings``: the 1-based arguments captured as C strings."""
    plans = _fields(kind, regs, func_address)
    lines = [f"name: {name}", f"ID: {PROBE_ID_BASE + (index & 0xFFF)}", "format:", _COMMON]
    offset = 8
    for plan in plans:
        ctype = "unsigned long" if plan.name.startswith("__") else "u64"
        lines.append(f"\tfield:{ctype} {plan.name};\toffset:{offset};\tsize:8;\tsigned:0;")
        offset += 8
    for n in strings:
        lines.append(f"\tfield:char arg{n}_str[{STR_LEN}];\toffset:{offset};\tsize:{STR_LEN};\tsigned:0;")
        offset += STR_LEN
    if kind.endswith("retprobe"):
        lines.append('\nprint fmt: "(0x%lx <- 0x%lx)", REC->__probe_ret_ip, REC->__probe_func')
    else:
        lines.append('\nprint fmt: "(0x%lx)", REC->__probe_ip')
    return parse_format("\n".join(lines) + "\n", kind), plans
