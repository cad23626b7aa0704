"""The BPF function of a probe selector (uprobe, uretprobe, kprobe, kretprobe).

A probe has no record of its own: its function builds one in the scratch area from the
registers (``EP_REG`` at offsets the resolver read from BTF), laid out as its format says
(``resolve/probe_format.py``), runs the filter over it as over a tracepoint's record, and sends
it with the same header and callchain as tracepoints. ``bpf/probe.c`` is the template.
"""
from __future__ import annotations

from dataclasses import dataclass

from ebpfprof.codegen.c import CIdent, c_comment, ident, snippet
from ebpfprof.kernel.event_format import EventFormat
from ebpfprof.lang.filter import CompiledFilter

__all__ = ["ProbeTarget", "ProbeFill", "ProbeProgram", "probe_function"]


@dataclass(frozen=True)
class ProbeTarget:
    """What the source attaches the function to, through the kernel's uprobe or kprobe PMU."""

    pmu: str                               # "uprobe" | "kprobe"
    retprobe: bool
    path: str | None = None                # uprobe: the file
    function: str | None = None            # kprobe: the kernel function
    offset: int = 0                        # uprobe: file offset; kprobe: offset in the function
    pids: tuple[int, ...] | None = None    # uprobe: the -p processes (the kernel probes only them)

    def describe(self) -> str:
        kind = self.pmu.replace("probe", "retprobe") if self.retprobe else self.pmu
        if self.pmu == "uprobe":
            return f"{kind} {self.path}+0x{self.offset:x}"
        return f"{kind} {self.function}" + (f"+0x{self.offset:x}" if self.offset else "")


@dataclass(frozen=True)
class ProbeFill:
    """One u64 of the record after its common header."""

    field: str
    register_offset: int | None            # a pt_regs member, or
    value: int = 0                         # a constant (register_offset None)
    note: str = ""                         # for the C comment: "di", "the function's address"


@dataclass(frozen=True)
class ProbeProgram:
    index: int
    fmt: EventFormat
    label: str
    target: ProbeTarget
    fills: tuple[ProbeFill, ...]
    strings: tuple[int, ...] = ()          # 1-based args read as C strings into argN_str
    filter: CompiledFilter | None = None
    cpus: tuple[int, ...] | None = None
    kernel_stack: bool = False
    user_stack: bool = False
    max_stack: int = 127
    python_stack: bool = False             # the Python frames of a CPython process (python_stack.h)
    needs_scratch = True                   # records are built in the scratch area

    @property
    def fn_name(self) -> CIdent:
        kind = self.target.pmu.replace("probe", "retprobe") if self.target.retprobe else self.target.pmu
        return ident(f"ep_sel{self.index}", f"{kind}__{self.fmt.name}")

    @property
    def filter_fn(self) -> CIdent:
        return self.filter.fn_name if self.filter else CIdent("ep_keep_all")


def _fill_lines(prog: ProbeProgram) -> str:
    lines = []
    for i, fill in enumerate(prog.fills, start=1):
        if fill.register_offset is not None:
            expr = f"EP_REG(ctx, {int(fill.register_offset)})"
        else:
            expr = f"0x{int(fill.value):x}ULL"
        note = f"\t/* {c_comment(fill.note, 60)} */" if fill.note else ""
        lines.append(f"\trec[{i}] = {expr};{note}")
    return "\n".join(lines)


def _string_lines(prog: ProbeProgram) -> str:
    if not prog.strings:
        return "\t/* no string arguments captured */"
    lines = []
    for n in prog.strings:
        f = prog.fmt.field(f"arg{n}_str")
        src = next(i for i, fill in enumerate(prog.fills, start=1) if fill.field == f"arg{n}")
        reader = "bpf_probe_read_user_str" if prog.target.pmu == "uprobe" else "bpf_probe_read_kernel_str"
        lines.append(f"\tif ({reader}(sc->raw + {int(f.offset)}, {int(f.size)}, (void *)rec[{src}]) < 0)\n"
                     f"\t\tsc->raw[{int(f.offset)}] = 0;\t/* unreadable: an empty string */")
    return "\n".join(lines)


def probe_function(prog: ProbeProgram, want_cpu: str, task_check: str) -> str:
    raw_size = prog.fmt.fixed_size
    return snippet("probe.c").substitute(
        index=prog.index,
        event_id=prog.fmt.id & 0xFFFF,
        comment=c_comment(prog.label),
        fn=prog.fn_name,
        task_check=task_check,
        fill=_fill_lines(prog),
        strings=_string_lines(prog),
        filter_fn=prog.filter_fn,
        raw_size=raw_size,
        raw_padded=(raw_size + 7) & ~7,
        kernel_stack=int(prog.kernel_stack),
        user_stack=int(prog.user_stack),
        max_stack=max(1, min(int(prog.max_stack), 127)),
        python_stack=PYTHON_STACK_CALL.format(raw_padded=(raw_size + 7) & ~7) if prog.python_stack else "",
    )


# After the callchain: the Python frames (bpf/python_stack.h); nothing when not asked for
PYTHON_STACK_CALL = "\n\tnr_frames = ep_python_stack(sc, {raw_padded}, nr_frames);"
