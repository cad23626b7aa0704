"""``page-faults``: every page fault (PERF_COUNT_SW_PAGE_FAULTS, period 1) of the run's CPUs or
tasks, with the faulting address; with -g the callchain and the user registers, as perf-prof."""
from __future__ import annotations

from ebpfprof.errors import SelectorError
from ebpfprof.lang.selector.ast import ProfilerSelector
from ebpfprof.profilers.argv import COMMON, parse_argv
from ebpfprof.profilers.base import (USER_REGS_MASK, PerfEventPlan, ProfilerPlan, SampleEvents,
                                     callchain_choice, exclude_flags, sample_fields, symbolized)
from ebpfprof.kernel.perf_abi import PERF_COUNT_SW_PAGE_FAULTS, PERF_TYPE_SOFTWARE, Sample

__all__ = ["NAME", "OPTIONS", "plan"]

NAME = "page-faults"
OPTIONS = COMMON
SUMMARY = "every page fault: ip, addr"


def plan(sel: ProfilerSelector, config) -> ProfilerPlan:
    values, _ = parse_argv(sel, OPTIONS)
    if values["exclude_user"] and values["exclude_kernel"]:
        raise SelectorError(f"{sel.text}: --exclude-user and --exclude-kernel leave no faults to record")
    chain, chain_flags, chain_note = callchain_choice(sel, values, config)
    sample_type = Sample.IP | Sample.TID | Sample.TIME | Sample.ADDR | Sample.CPU | Sample.PERIOD | chain
    regs = 0
    if chain and USER_REGS_MASK:
        sample_type |= Sample.REGS_USER
        regs = USER_REGS_MASK
    event = PerfEventPlan(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_PAGE_FAULTS, "page-faults",
                          sample_period=1, flags=exclude_flags(values) | chain_flags)

    def render(ev) -> str:
        where = symbolized(ev._pid, ev.ip)
        return f"addr {ev.addr:016x} ip {ev.ip:016x}" + (f" {where}" if where else "")

    samples = SampleEvents(sample_type, 0, regs, 0, sample_fields(sample_type), render,
                           print_name=None if sel.alias else "page-fault")    # perf-prof's line
    note = "every page fault" + (f", {chain_note}" if chain_note else "")
    return ProfilerPlan((event,), samples, values["budget"], values["mmap_pages"], note)
