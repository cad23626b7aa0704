"""Resolve parsed selectors against this kernel: expand wildcards, read formats, compile filters.

The output, one ``ResolvedTracepoint`` per tracepoint to attach, is everything the code
generator, the event classes and the template need. Nothing is loaded into the kernel here,
so every mistake in a selector is reported before anything is attached.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..codegen import DEFAULT_MAX_STACK
from ..config import RunConfig
from ..errors import KernelError, SelectorError, UsageError
from ..kernel import tracefs
from ..kernel.event_format import EventFormat
from ..kernel.features import kprobes_supported
from ..script import handler_name
from .ast import ProbeSelector, ProfilerSelector, Selector, TracepointSelector
from .parser import parse_selectors

__all__ = ["ResolvedTracepoint", "resolve_selectors", "parse_all", "online_cpus"]


@dataclass(frozen=True)
class ResolvedTracepoint:
    index: int
    selector: TracepointSelector
    format: EventFormat
    event_name: str            # the value of _event: "sys:name", or "sys:alias"
    handler: str               # the handler's name: sys__name, or sys__alias
    cpus: tuple[int, ...] | None
    kernel_stack: bool
    user_stack: bool
    max_stack: int
    filter_code: str = ""
    filter_fn: str = ""

    @property
    def stack(self) -> bool:
        return self.kernel_stack or self.user_stack


def online_cpus() -> tuple[int, ...]:
    from ..idlist import parse_id_list

    try:
        with open("/sys/devices/system/cpu/online") as f:
            return parse_id_list(f.read().strip())
    except (OSError, ValueError):
        import os

        return tuple(range(os.cpu_count() or 1))


def parse_all(events: tuple[str, ...]) -> list[tuple[str, Selector]]:
    """Every selector of every -e option, with the -e text it came from."""
    out = []
    for text in events:
        out.extend((text, s) for s in parse_selectors(text))
    return out


def _cpus_for(sel: Selector, config: RunConfig, online: tuple[int, ...]) -> tuple[int, ...] | None:
    for what, cpus in (("-C", config.cpus), (f"{sel.text}: cpus=", sel.cpus)):
        if cpus is not None:
            missing = [c for c in cpus if c not in online]
            if missing:
                from ..idlist import format_id_list

                raise UsageError(f"{what} names CPU {missing[0]}, which is not online",
                                 hint=f"online CPUs here: {format_id_list(online)}")
    if config.cpus is None:
        return sel.cpus
    if sel.cpus is None:
        return config.cpus
    both = tuple(c for c in sel.cpus if c in set(config.cpus))
    if not both:
        raise UsageError(f"{sel.text}: cpus={sel.attr('cpus').value} and -C share no CPU")
    return both


def _compile_filter(sel: TracepointSelector, fmt: EventFormat, index: int) -> tuple[str, str]:
    if not sel.filter:
        return "", ""
    try:
        from ..filter import compile_filter
    except ImportError:
        raise SelectorError(f"{sel.text}: filters are not supported by this build") from None
    from ..filter import FilterError
    from .parser import KNOWN_ATTRS

    fn = f"ep_sel{index}_filter"
    try:
        compiled = compile_filter(sel.filter, fmt, selector=fmt.full_name, fn_name=fn)
    except FilterError as e:
        key = sel.filter.strip().split("=", 1)[0]
        if key in KNOWN_ATTRS and not e.hint:
            # sys:name/stack/ — an ATTR where the filter goes.
            e.hint = (f"'{sel.filter.strip()}' is an ATTR; ATTRs come after the filter: "
                      f"{sel.system}:{sel.name}//{sel.filter.strip()}/")
        raise
    return compiled.c_code, fn


def resolve_selectors(events: tuple[str, ...], config: RunConfig) -> list[ResolvedTracepoint]:
    """All selectors of the run, resolved; raises the first error found."""
    online = online_cpus()
    out: list[ResolvedTracepoint] = []
    for _text, sel in parse_all(events):
        if isinstance(sel, ProfilerSelector):
            raise SelectorError(f"{sel.text}: profiler sources ({sel.name}) are not supported yet",
                                hint="use tracepoints for now, e.g. -e sched:sched_wakeup")
        if isinstance(sel, ProbeSelector):
            if sel.kind in ("kprobe", "kretprobe"):
                reason = kprobes_supported()
                if reason:
                    raise KernelError(f"{sel.text}: {reason}",
                                      hint="use a tracepoint instead (ls /sys/kernel/tracing/events), "
                                           "or boot a kernel built with CONFIG_KPROBES=y")
            raise SelectorError(f"{sel.text}: {sel.kind} selectors are not supported yet",
                                hint="use tracepoints for now, e.g. -e syscalls:sys_enter_openat")
        assert isinstance(sel, TracepointSelector)
        cpus = _cpus_for(sel, config, online)
        stack = sel.stack or config.call_graph
        max_stack = sel.max_stack or DEFAULT_MAX_STACK
        for system, name in tracefs.expand_tracepoint(sel.system, sel.name):
            fmt = tracefs.read_format(system, name)
            index = len(out)
            filter_code, filter_fn = _compile_filter(sel, fmt, index)
            shown = sel.alias or name
            out.append(ResolvedTracepoint(
                index=index, selector=sel, format=fmt,
                event_name=f"{system}:{shown}", handler=handler_name(system, shown),
                cpus=cpus,
                kernel_stack=stack and config.kernel_callchain,
                user_stack=stack and config.user_callchain,
                max_stack=max_stack,
                filter_code=filter_code, filter_fn=filter_fn,
            ))
    if len(out) > 0xFFFF:
        raise SelectorError(f"{len(out)} tracepoints selected; at most 65535 per run")
    return out
