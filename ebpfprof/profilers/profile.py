"""``profile``: CPU sampling at -F Hz on every CPU (or task) of the run.

Hardware cycles where the machine has a PMU, else the ``cpu-clock`` software timer (a VM
without a virtual PMU: decided by trying to open a cycles event; -v says which). perf-prof's
default -F 0 is a counting event that never samples; ours samples at 997 Hz unless told.
"""
from __future__ import annotations

from ebpfprof.errors import SelectorError
from ebpfprof.kernel import features
from ebpfprof.lang.selector.ast import ProfilerSelector
from ebpfprof.profilers.argv import COMMON, Opt, parse_argv
from ebpfprof.profilers.base import (READ_FORMAT, PerfEventPlan, ProfilerPlan, SampleEvents,
                                     callchain_choice, exclude_flags, sample_fields)
from ebpfprof.kernel.perf_abi import (PERF_COUNT_HW_CPU_CYCLES, PERF_COUNT_SW_CPU_CLOCK,
                                       PERF_TYPE_HARDWARE, PERF_TYPE_SOFTWARE, Sample)

__all__ = ["NAME", "OPTIONS", "DEFAULT_HZ", "plan"]

NAME = "profile"
DEFAULT_HZ = 997        # prime: does not beat with the kernel's HZ or with periodic work
OPTIONS = (Opt(("-F", "--freq"), "freq", "HZ", f"samples per second per CPU (default {DEFAULT_HZ})",
               default=DEFAULT_HZ, low=1),) + COMMON
SUMMARY = "CPU sampling: cpu-clock (or cycles with a PMU) at -F Hz per CPU"


def plan(sel: ProfilerSelector, config) -> ProfilerPlan:
    values, _ = parse_argv(sel, OPTIONS)
    hz = values["freq"]
    limit = features.max_sample_rate()
    if limit is not None and hz > limit:
        raise SelectorError(f"{sel.text}: -F {hz} is above this kernel's limit of {limit} samples/s",
                            hint=f"use -F {limit} or less, or raise the limit: "
                                 f"sysctl kernel.perf_event_max_sample_rate={hz}")
    if values["exclude_user"] and values["exclude_kernel"]:
        raise SelectorError(f"{sel.text}: --exclude-user and --exclude-kernel leave nothing to sample")
    chain, chain_flags, chain_note = callchain_choice(sel, values, config)
    sample_type = Sample.IP | Sample.TID | Sample.TIME | Sample.CPU | Sample.PERIOD | Sample.READ | chain
    flags = exclude_flags(values) | chain_flags
    if features.cpu_cycles_event() is None:
        # The timer's period is exact: 1e9/HZ ns, no frequency adjustment needed.
        event = PerfEventPlan(PERF_TYPE_SOFTWARE, PERF_COUNT_SW_CPU_CLOCK, "cpu-clock",
                              sample_period=max(1, 1_000_000_000 // hz), flags=flags)
    else:
        event = PerfEventPlan(PERF_TYPE_HARDWARE, PERF_COUNT_HW_CPU_CYCLES, "cycles",
                              sample_period=hz, freq=True, flags=flags)
    label = event.label

    def render(ev) -> str:
        return f"{ev.period} {label}"

    samples = SampleEvents(sample_type, READ_FORMAT, 0, 0, sample_fields(sample_type, READ_FORMAT), render)
    note = (f"{label} at {hz} Hz" + (" — no hardware PMU here, so no cycles" if label == "cpu-clock" else "")
            + (f", {chain_note}" if chain_note else ""))
    return ProfilerPlan((event,), samples, values["budget"], values["mmap_pages"], note)
