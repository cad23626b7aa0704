"""``breakpoint``: hardware breakpoints (the CPU's debug registers) on up to 4 addresses.

``breakpoint/ADDR[/LEN][:TYPE] .../``: ADDR a number (``0x601040``) or a symbol (a kernel
symbol, or with -p a variable of that process's executable), LEN 1, 2, 4 or 8 bytes (default 4,
8 for x), TYPE of r, w, x (default rw; x alone). One perf event per address; every sample says
which address was hit (``addr``).
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ebpfprof.errors import SelectorError
from ebpfprof.lang.selector.ast import ProfilerSelector
from ebpfprof.profilers.argv import COMMON, parse_argv
from ebpfprof.profilers.base import (INTR_REGS_MASK, PerfEventPlan, ProfilerPlan, SampleEvents,
                                     callchain_choice, exclude_flags, sample_fields, symbolized)
from ebpfprof.kernel.perf_abi import (HW_BREAKPOINT_R, HW_BREAKPOINT_W, HW_BREAKPOINT_X,
                                       PERF_TYPE_BREAKPOINT, Sample)

__all__ = ["NAME", "OPTIONS", "plan", "Watch", "parse_watch", "MAX_BREAKPOINTS"]

NAME = "breakpoint"
OPTIONS = COMMON
SUMMARY = "hardware breakpoint on an address: ADDR[/LEN][:rwx], up to 4"
MAX_BREAKPOINTS = 4            # x86 and arm64 have four debug address registers (at least)
_LENGTHS = (1, 2, 4, 8)
_TYPES = {"r": HW_BREAKPOINT_R, "w": HW_BREAKPOINT_W, "x": HW_BREAKPOINT_X}
_WATCH_RE = re.compile(r"(?P<addr>[^/:]+)(?:/(?P<len>[^:]*))?(?::(?P<type>.*))?\Z")


@dataclass(frozen=True)
class Watch:
    """One watched address."""

    text: str              # as the user wrote it
    addr: int
    length: int
    type: int              # HW_BREAKPOINT_* bits

    @property
    def label(self) -> str:
        kinds = "".join(k for k, bit in _TYPES.items() if self.type & bit)
        return f"0x{self.addr:x}/{self.length}:{kinds}"


def _symbol_address(sel: ProfilerSelector, name: str, pids) -> int:
    """A kernel symbol's address, else (with -p) a symbol of the first process's executable."""
    for addr, sym, _module in _kallsyms():
        if sym == name:
            return addr
    if pids:
        from ebpfprof.symbols.elf import process_symbol

        for pid in pids:
            addr = process_symbol(pid, name)
            if addr is not None:
                return addr
        where = f"the kernel or process {pids[0]} ({_exe(pids[0])})"
    else:
        where = "the kernel (a variable of a program needs -p PID)"
    hint = "give an address (0x601040), or check the name with: nm PROGRAM"
    if not _kernel_lists_variables():
        hint += "; this kernel's /proc/kallsyms lists functions only (CONFIG_KALLSYMS_ALL is not set)"
    raise SelectorError(f"{sel.text}: no symbol '{name}' in {where}", hint=hint)


def _kernel_lists_variables() -> bool:
    """Whether kallsyms has data symbols (CONFIG_KALLSYMS_ALL): a few dozen section markers
    are there either way."""
    return sum(1 for _a, _s, kind in _kallsyms(kinds=True) if kind in "dDbB") > 1000


def _kallsyms(kinds: bool = False):
    """(address, name, module) of each kernel symbol; (address, name, type letter) with kinds."""
    try:
        with open("/proc/kallsyms") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 3:
                    yield int(parts[0], 16), parts[2], parts[1] if kinds else (parts[3] if len(parts) > 3 else "")
    except OSError:
        return


def _exe(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return "?"


def parse_watch(sel: ProfilerSelector, text: str, pids=None) -> Watch:
    """``ADDR[/LEN][:TYPE]`` → Watch, or a SelectorError saying which part is wrong."""
    m = _WATCH_RE.match(text)
    if not m:
        raise SelectorError(f"{sel.text}: '{text}' is not ADDR[/LEN][:rwx]",
                            hint="e.g. breakpoint/0x601040/8:w/ or breakpoint/my_counter:w/")
    addr_text, len_text, type_text = m.group("addr"), m.group("len"), m.group("type")
    try:
        addr = int(addr_text, 0)
    except ValueError:
        if not re.fullmatch(r"[A-Za-z_.$][A-Za-z0-9_.$@]*", addr_text):
            raise SelectorError(f"{sel.text}: '{addr_text}' is neither an address nor a symbol name",
                                hint="an address is 0x601040 or 6295616; a symbol is a C name") from None
        addr = _symbol_address(sel, addr_text, pids)
    kinds = type_text if type_text is not None else "rw"
    if not kinds or any(k not in _TYPES for k in kinds) or len(set(kinds)) != len(kinds):
        raise SelectorError(f"{sel.text}: breakpoint type '{kinds}' in '{text}': expected r, w, x, rw",
                            hint="w: writes; rw: reads and writes; x: execution")
    bp_type = 0
    for k in kinds:
        bp_type |= _TYPES[k]
    if bp_type & HW_BREAKPOINT_X and bp_type != HW_BREAKPOINT_X:
        raise SelectorError(f"{sel.text}: '{text}': x cannot be combined with r or w",
                            hint="use two breakpoints, one :x and one :rw")
    if bp_type == HW_BREAKPOINT_R and os.uname().machine == "x86_64":
        raise SelectorError(f"{sel.text}: '{text}': x86 debug registers cannot watch reads alone",
                            hint=f"use :rw (reads and writes): {addr_text}{'/' + len_text if len_text else ''}:rw")
    if len_text is None or len_text == "":
        if len_text == "":
            raise SelectorError(f"{sel.text}: '{text}': empty LEN after '/'", hint="LEN is 1, 2, 4 or 8")
        length = 8 if bp_type == HW_BREAKPOINT_X else 4
    else:
        try:
            length = int(len_text, 0)
        except ValueError:
            length = -1
        if length not in _LENGTHS:
            raise SelectorError(f"{sel.text}: breakpoint length '{len_text}' in '{text}': expected 1, 2, 4 or 8",
                                hint="the CPU watches 1, 2, 4 or 8 aligned bytes")
    if bp_type == HW_BREAKPOINT_X and length != 8:
        raise SelectorError(f"{sel.text}: '{text}': an execution breakpoint has length 8 (sizeof(long))")
    if addr % length:
        raise SelectorError(f"{sel.text}: '{text}': address 0x{addr:x} is not aligned to its length {length}",
                            hint=f"the CPU watches aligned ranges: use 0x{addr - addr % length:x}/{length} "
                                 f"or a smaller LEN")
    return Watch(text, addr, length, bp_type)


def plan(sel: ProfilerSelector, config) -> ProfilerPlan:
    values, args = parse_argv(sel, OPTIONS, positional="addresses ADDR[/LEN][:rwx]",
                              max_positional=MAX_BREAKPOINTS)
    if not args:
        raise SelectorError(f"{sel.text}: breakpoint needs an address: breakpoint/ADDR[/LEN][:rwx]/",
                            hint="e.g. -e 'breakpoint/0x601040/8:w/' -p PID")
    if len(args) > MAX_BREAKPOINTS:   # parse_argv stops at the limit; said here for clarity
        raise SelectorError(f"{sel.text}: at most {MAX_BREAKPOINTS} breakpoints (the CPU's debug registers)")
    watches = tuple(parse_watch(sel, a, config.pids) for a in args)
    seen = set()
    for w in watches:
        if (w.addr, w.length, w.type) in seen:
            raise SelectorError(f"{sel.text}: '{w.text}' is given twice")
        seen.add((w.addr, w.length, w.type))
    chain, chain_flags, chain_note = callchain_choice(sel, values, config)
    sample_type = (Sample.IP | Sample.TID | Sample.TIME | Sample.ADDR | Sample.CPU | Sample.PERIOD
                   | chain | (Sample.REGS_INTR if INTR_REGS_MASK else 0))
    flags = exclude_flags(values) | chain_flags
    events = tuple(PerfEventPlan(PERF_TYPE_BREAKPOINT, 0, w.label, sample_period=1, flags=flags,
                                 bp_type=w.type, bp_addr=w.addr, bp_len=w.length) for w in watches)
    by_addr = {w.addr: w.label for w in watches}

    def render(ev) -> str:
        where = symbolized(ev._pid, ev.ip)
        return f"{by_addr.get(ev.addr, hex(ev.addr))} ip " + (where or f"{ev.ip:016x}")

    samples = SampleEvents(sample_type, 0, 0, INTR_REGS_MASK, sample_fields(sample_type), render)
    note = ", ".join(w.label for w in watches) + (f", {chain_note}" if chain_note else "")
    return ProfilerPlan(events, samples, values["budget"], values["mmap_pages"], note,
                        extra={"watches": watches})
