"""Tracepoint selectors against this kernel: wildcards expanded, formats read, filters compiled.

One ``ResolvedTracepoint`` per tracepoint to attach; it goes to the BPF source.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ebpfprof.codegen.program import DEFAULT_MAX_STACK, TracepointProgram
from ebpfprof.kernel import tracefs
from ebpfprof.kernel.event_format import EventFormat
from ebpfprof.errors import SelectorError
from ebpfprof.lang.filter import CompiledFilter, FilterError, compile_filter
from ebpfprof.lang.selector.ast import TracepointSelector
from ebpfprof.lang.selector.parser import KNOWN_ATTRS
from ebpfprof.options import RunConfig
from ebpfprof.resolve.common import cpus_for
from ebpfprof.resolve.spec import EventSpec, handler_name

__all__ = ["ResolvedTracepoint", "resolve_tracepoint"]


@dataclass(frozen=True)
class ResolvedTracepoint:
    """One tracepoint of the run: its events (``event``) and its BPF function (``program``)."""

    source: ClassVar[str] = "bpf"

    selector: TracepointSelector
    event: EventSpec
    program: TracepointProgram


def _compile_filter(sel: TracepointSelector, fmt: EventFormat, index: int) -> CompiledFilter | None:
    if not sel.filter:
        return None
    try:
        return compile_filter(sel.filter, fmt, selector=fmt.full_name, fn_name=f"ep_sel{index}_filter")
    except FilterError as e:
        key = sel.filter.strip().split("=", 1)[0]
        if key in KNOWN_ATTRS and not e.hint:
            # sys:name/stack/ — an ATTR where the filter goes.
            e.hint = (f"'{sel.filter.strip()}' is an ATTR; ATTRs come after the filter: "
                      f"{sel.system}:{sel.name}//{sel.filter.strip()}/")
        raise


def resolve_tracepoint(sel: TracepointSelector, config: RunConfig, online: tuple[int, ...],
                       first_index: int) -> list[ResolvedTracepoint]:
    """Every tracepoint ``sel`` names; their class indexes start at ``first_index``."""
    if sel.attr("str") is not None:
        raise SelectorError(f"{sel.text}: str= is for probes (it reads a function's argument as a "
                            "C string); a tracepoint's string fields are strings already")
    cpus = cpus_for(sel, config, online)
    stack = sel.stack or config.call_graph
    out = []
    for system, name in tracefs.expand_tracepoint(sel.system, sel.name):
        fmt = tracefs.read_format(system, name)
        index = first_index + len(out)
        shown = sel.alias or name
        event = EventSpec(
            event_name=f"{system}:{shown}", handler=handler_name(system, shown),
            title=fmt.full_name + (f" (alias {sel.alias})" if sel.alias else ""), format=fmt)
        program = TracepointProgram(
            index=index, fmt=fmt, label=sel.text, filter=_compile_filter(sel, fmt, index),
            cpus=cpus, kernel_stack=stack and config.kernel_callchain,
            user_stack=stack and config.user_callchain,
            max_stack=sel.max_stack or DEFAULT_MAX_STACK,
            python_stack=sel.python_stack or config.python_callchain)
        out.append(ResolvedTracepoint(sel, event, program))
    return out
