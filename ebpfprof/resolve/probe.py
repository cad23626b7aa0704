"""kprobe/kretprobe/uprobe/uretprobe selectors: not built yet; kprobes also need the kernel's."""
from __future__ import annotations

from ebpfprof.errors import KernelError, SelectorError
from ebpfprof.kernel.features import kprobes_supported
from ebpfprof.lang.selector.ast import ProbeSelector
from ebpfprof.options import RunConfig

__all__ = ["resolve_probe"]


def resolve_probe(sel: ProbeSelector, config: RunConfig, online: tuple[int, ...],
                  first_index: int) -> list:
    if sel.kind in ("kprobe", "kretprobe"):
        reason = kprobes_supported()
        if reason:
            raise KernelError(f"{sel.text}: {reason}",
                              hint="use a tracepoint instead (ls /sys/kernel/tracing/events), "
                                   "or boot a kernel built with CONFIG_KPROBES=y")
    if sel.file is not None:          # its mistakes first: a bad file or symbol says so now
        from ebpfprof.resolve.uprobe_place import uprobe_place

        uprobe_place(sel, config.pids[0] if config.pids else None)
    raise SelectorError(f"{sel.text}: {sel.kind} selectors are not supported yet",
                        hint="use tracepoints for now, e.g. -e syscalls:sys_enter_openat")
