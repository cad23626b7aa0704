"""Probe selectors (uprobe, uretprobe, kprobe, kretprobe) → BPF functions of the run's program.

A uprobe's place is found in its file (``uprobe_place.py``); its record is described as a
format (``probe_format.py``) whose values come from registers at offsets this kernel's BTF
gives; the filter compiles against that format like a tracepoint's. The function goes to the
BPF source with the tracepoints (one program, one ring), attached through the probe PMU.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import ClassVar

from ebpfprof.codegen.probe import ProbeFill, ProbeProgram, ProbeTarget
from ebpfprof.codegen.program import DEFAULT_MAX_STACK
from ebpfprof.errors import KernelError, SelectorError
from ebpfprof.kernel.btf import BtfError, struct_offsets
from ebpfprof.kernel.features import fentry_refused, kprobes_supported
from ebpfprof.lang.filter import compile_filter
from ebpfprof.lang.selector.ast import ProbeSelector
from ebpfprof.options import RunConfig
from ebpfprof.resolve.common import cpus_for
from ebpfprof.resolve.probe_format import ARG_COUNT, STR_LEN, probe_format, probe_registers
from ebpfprof.resolve.spec import EventSpec, handler_name

__all__ = ["ResolvedProbe", "resolve_probe", "PIDS_AT_ATTACH_MAX"]

# Up to this many -p processes get a probe event each (the kernel then installs the
# breakpoint in their memory alone); more are probed everywhere and filtered in BPF.
PIDS_AT_ATTACH_MAX = 64


@dataclass(frozen=True)
class ResolvedProbe:
    """One probe of the run: its events (``event``) and its BPF function (``program``)."""

    source: ClassVar[str] = "bpf"

    selector: ProbeSelector
    event: EventSpec
    program: ProbeProgram

    @property
    def identity(self) -> tuple:
        """What makes two probes the same probe: the kind and the place it resolved to."""
        t = self.program.target
        return (self.selector.kind, t.path or t.function, t.offset)


def _register_offset(name: str, offsets: dict[str, int]) -> int:
    if name.startswith("regs["):                   # arm64: u64 regs[31]
        return offsets["regs"] + 8 * int(name[5:-1])
    return offsets[name]


def _strings(sel: ProbeSelector) -> tuple[int, ...]:
    attr = sel.attr("str")
    if attr is None:
        return ()
    try:
        ns = tuple(sorted({int(x) for x in (attr.value or "").split(",") if x.strip()}))
    except ValueError:
        ns = ()
    if not ns or any(not 1 <= n <= ARG_COUNT for n in ns):
        raise SelectorError(f"{sel.text}: str={attr.value}: give the arguments to read as C strings, "
                            f"1 to {ARG_COUNT}: str=1 or str=1,3")
    if sel.is_return:
        raise SelectorError(f"{sel.text}: str= reads arguments, and a return probe has none "
                            f"(probe the entry: {sel.kind.replace('ret', '')}:...)")
    return ns


def _kernel_function_address(name: str) -> int:
    from ebpfprof.symbols import default_resolver

    return default_resolver().kernel.address_of(name) or 0


def resolve_probe(sel: ProbeSelector, config: RunConfig, online: tuple[int, ...],
                  first_index: int) -> list[ResolvedProbe]:
    uprobe = sel.kind in ("uprobe", "uretprobe")
    if not uprobe:
        reason = kprobes_supported()
        if reason:
            # BTF trampolines are the other way into kernel functions: say whether they are too
            fentry = fentry_refused(sel.function) if sel.function else None
            reason += (f"; {fentry}" if fentry else
                       "; fentry would be allowed here, but ebpfprof does not generate fentry programs yet")
            raise KernelError(f"{sel.text}: {reason}",
                              hint="use a tracepoint instead (ls /sys/kernel/tracing/events), "
                                   "or boot a kernel built with CONFIG_KPROBES=y")
    regs = probe_registers()
    if regs is None:
        raise KernelError(f"{sel.text}: ebpfprof does not know the calling convention of "
                          f"{os.uname().machine} yet (x86-64 and arm64 only)")
    try:
        offsets = struct_offsets("pt_regs")
    except BtfError as e:
        raise KernelError(f"{sel.text}: probes need this kernel's BTF for the register layout: {e}") from None
    strings = _strings(sel)
    pids = config.pids
    if uprobe:
        from ebpfprof.resolve.uprobe_place import uprobe_place

        place = uprobe_place(sel, pids[0] if pids else None)
        func_address = place.address - place.function_offset if place.function else place.address
        target = ProbeTarget("uprobe", sel.is_return, path=place.path, offset=place.offset,
                             pids=tuple(pids) if pids and len(pids) <= PIDS_AT_ATTACH_MAX else None)
        where = place.describe()
    else:
        func_address = _kernel_function_address(sel.function)
        target = ProbeTarget("kprobe", sel.is_return, function=sel.function, offset=sel.offset)
        where = sel.place
    shown = sel.alias or sel.place       # probed_add, probed_add+0x4, 0x11c5: as written
    index = first_index
    fmt, plans = probe_format(sel.kind, shown, regs, func_address=func_address, strings=strings,
                               index=index)
    fills = []
    for plan in plans:
        kind, _, what = plan.source.partition(":")
        if kind == "reg":
            fills.append(ProbeFill(plan.name, _register_offset(what, offsets), note=f"{plan.name}: {what}"))
        else:
            fills.append(ProbeFill(plan.name, None, int(what), note=f"{plan.name}: the function's address"))
    compiled = None
    if sel.filter:
        compiled = compile_filter(sel.filter, fmt, selector=f"{sel.kind}:{shown}", fn_name=f"ep_sel{index}_filter")
    stack = sel.stack or config.call_graph
    program = ProbeProgram(
        index=index, fmt=fmt, label=sel.text, target=target, fills=tuple(fills), strings=strings,
        filter=compiled, cpus=cpus_for(sel, config, online),
        kernel_stack=stack and config.kernel_callchain, user_stack=stack and config.user_callchain,
        max_stack=sel.max_stack or DEFAULT_MAX_STACK,
        python_stack=sel.python_stack or config.python_callchain)
    event = EventSpec(event_name=f"{sel.kind}:{shown}", handler=handler_name(sel.kind, shown),
                      title=f"{sel.kind}:{shown} ({where})", format=fmt,
                      meanings=tuple((p.name, p.meaning) for p in plans)
                      + tuple((f"arg{n}_str", f"argument {n} read as a C string (at most {STR_LEN - 1} bytes; "
                                              f"'' if the pointer is unreadable)") for n in strings))
    return [ResolvedProbe(sel, event, program)]
