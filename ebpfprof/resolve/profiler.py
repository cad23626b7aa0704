"""Profiler selectors (profile, page-faults, breakpoint) → specs for the perf source.

The profiler's own module (``ebpfprof/profilers/``) reads its options; here the run's side is
added: the CPUs, the handler and ``_event`` names, and the filter on its samples (compiled to a
BPF program that runs in the kernel on every sample, ``codegen/sample_filter.py``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ebpfprof.errors import SelectorError, close_matches
from ebpfprof.lang.selector.ast import ProfilerSelector
from ebpfprof.options import RunConfig
from ebpfprof.profilers import PROFILERS
from ebpfprof.profilers.base import ProfilerPlan
from ebpfprof.resolve.common import cpus_for
from ebpfprof.resolve.spec import EventSpec, handler_name

__all__ = ["ResolvedProfiler", "resolve_profiler"]


@dataclass(frozen=True)
class ResolvedProfiler:
    """One profiler selector of the run: its events (``event``) and what to open (``plan``)."""

    source: ClassVar[str] = "perf"

    selector: ProfilerSelector
    index: int                            # its event class's index in the run
    event: EventSpec
    plan: ProfilerPlan
    cpus: tuple[int, ...] | None          # None: every online CPU
    filter_program: str | None = None     # generated BPF C of its --filter, if any
    max_stack: int = 127
    filter_function: str | None = None    # the program's function to load
    python_stack: bool = False            # the program also writes Python stacks (ep_py_ring)


def resolve_profiler(sel: ProfilerSelector, config: RunConfig, online: tuple[int, ...],
                     first_index: int) -> list[ResolvedProfiler]:
    module = PROFILERS.get(sel.name)
    if module is None:
        guess = close_matches(sel.name, list(PROFILERS))
        raise SelectorError(f"-e {sel.text}: unknown event or profiler '{sel.name}'",
                            hint=(f"did you mean '{guess[0]}'? " if guess else "")
                            + "profilers: " + ", ".join(PROFILERS)
                            + "; tracepoints are sys:name (ebpfprof python -e 'sched:*' help lists them)")
    plan = module.plan(sel, config)
    shown = sel.alias or sel.name
    event = EventSpec(event_name=shown, handler=handler_name(None, shown),
                      title=f"{sel.name} ({plan.title_note})" + (f", alias {sel.alias}" if sel.alias else ""),
                      format=None, sample=plan.samples, budget=plan.budget)
    program = None
    python = sel.python_stack or config.python_callchain
    if sel.filter or python:
        # One BPF program on its perf events: the filter, and the Python stack of what it keeps
        from ebpfprof.codegen.sample_filter import compile_sample_filter, generate_sample_filter_program
        from ebpfprof.kernel.features import task_fsbase_offset

        fn = f"ep_prof{first_index}_filter"
        compiled = compile_sample_filter(sel.filter, selector=shown, fn_name=fn) if sel.filter else None
        program = generate_sample_filter_program(compiled, label=sel.text, fn_name=fn, python_stack=python,
                                                 task_fsbase_offset=task_fsbase_offset() if python else None)
    return [ResolvedProfiler(sel, first_index, event, plan, cpus_for(sel, config, online), program,
                             sel.max_stack or 127,
                             f"ep_prof{first_index}_filter_sample" if program else None, python)]
