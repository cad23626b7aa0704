"""Generate the BPF C program of a run from the snippets in ``bpf/``.

Input: one ``TracepointProgram`` per (expanded) tracepoint selector, the run's task
restrictions, and the tracepoints that name tasks (``CommTracker``, for print()'s comm map).
Output: ``GeneratedProgram`` — the C text, the function to attach per tracepoint, and the
values of the maps that user space must fill before attaching.

Values enter the C only through ``codegen.c``: identifiers built by ``ident()``, filter
functions as ``CCode`` from the filter compiler (which never pastes user text), comments through
``c_comment``, and integers this module formats itself.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from ebpfprof.codegen.c import CCode, CIdent, c_comment, ident, snippet, snippet_text
from ebpfprof.codegen.probe import PYTHON_STACK_CALL, ProbeProgram, ProbeTarget, probe_function
from ebpfprof.kernel.event_format import EventFormat, FieldKind
from ebpfprof.lang.filter import CompiledFilter
from ebpfprof.lang.idlist import format_id_list

__all__ = ["TracepointProgram", "TaskFilter", "CommTracker", "GeneratedProgram", "Attachment",
           "generate_program",
           "DEFAULT_MAX_STACK", "INLINE_ID_LIMIT"]

DEFAULT_MAX_STACK = 127          # perf's kernel.perf_event_max_stack default
PY_MAX_FRAMES = 62               # Python frames kept per event (bpf/python_stack.h's room)
INLINE_ID_LIMIT = 32             # more -p/-t ids than this go to a hash map


@dataclass(frozen=True)
class TracepointProgram:
    """One tracepoint to attach, with everything that shapes its BPF function."""

    index: int                        # selector id written into every record
    fmt: EventFormat
    label: str                        # shown in the C comment: the selector text
    filter: CompiledFilter | None = None   # C from the filter compiler, None = keep all
    cpus: tuple[int, ...] | None = None
    kernel_stack: bool = False
    user_stack: bool = False
    max_stack: int = DEFAULT_MAX_STACK
    python_stack: bool = False        # the Python frames of a CPython process (python_stack.h)

    @property
    def fn_name(self) -> CIdent:
        return ident(f"ep_sel{self.index}", f"{self.fmt.system}__{self.fmt.name}")

    @property
    def filter_fn(self) -> CIdent:
        return self.filter.fn_name if self.filter else CIdent("ep_keep_all")

    @property
    def needs_scratch(self) -> bool:
        return self.fmt.has_dynamic or self.kernel_stack or self.user_stack or self.python_stack


@dataclass(frozen=True)
class TaskFilter:
    """-p / -t restrictions (None: everything)."""

    tgids: tuple[int, ...] | None = None
    tids: tuple[int, ...] | None = None


@dataclass(frozen=True)
class Attachment:
    """One function to attach to one tracepoint; a shared function reads ``cookie``."""

    tracepoint: str                  # "sys:name" (a probe: what it probes, for messages)
    function: str
    cookie: int | None = None        # None: attached without one
    probe: ProbeTarget | None = None  # a probe's function: attached through the probe PMU


@dataclass(frozen=True)
class CommTracker:
    """The formats of the tracepoints that name tasks (bpf/comm_map.h); None where this kernel
    lacks one. Their functions write the comm map, never a record, and take no selector index."""

    exec_fmt: EventFormat | None = None          # sched:sched_process_exec
    fork_fmt: EventFormat | None = None          # sched:sched_process_fork
    rename_fmt: EventFormat | None = None        # task:task_rename


@dataclass
class GeneratedProgram:
    text: str
    attach: list[Attachment]
    maps_to_fill: dict[str, tuple[int, ...]] = field(default_factory=dict)
    # Functions of ``attach`` that write no records (the comm tracker): not event classes,
    # and their recursion misses are no lost events.
    silent: tuple[str, ...] = ()


# A selector that names at least this many tracepoints gets one shared function for them
# all (when nothing in its function depends on one tracepoint's layout).
SHARE_MIN = 8


def _share_key(prog: TracepointProgram):
    """Programs with the same key (a selector's tracepoints) can share a function; None: this
    one cannot (a filter or the scratch path depend on one tracepoint's layout)."""
    if isinstance(prog, ProbeProgram) or prog.filter is not None or prog.needs_scratch:
        return None
    return (prog.label, prog.cpus)


def _shared_groups(programs: list[TracepointProgram]) -> dict[int, list[TracepointProgram]]:
    """Groups of SHARE_MIN+ programs that can share one function, by the first one's index."""
    by_key: dict[object, list[TracepointProgram]] = {}
    for prog in programs:
        key = _share_key(prog)
        if key is not None:
            by_key.setdefault(key, []).append(prog)
    return {group[0].index: group for group in by_key.values() if len(group) >= SHARE_MIN}


def _shared_function(group: list[TracepointProgram], want_cpu: str, task: TaskFilter) -> tuple[str, list[Attachment]]:
    first = group[0]
    fn = ident(f"ep_sel{first.index}", "shared")
    largest = max(max(p.fmt.fixed_size, 8) for p in group) - 8
    copy_max = 1 << max(largest, 1).bit_length()       # a power of two above the largest copy
    text = snippet("tracepoint_shared.c").substitute(
        first=first.index, last=group[-1].index, count=len(group), comment=c_comment(first.label),
        fn=fn, copy_max=copy_max, task_check=_task_check(want_cpu, task))
    attach = [Attachment(f"{p.fmt.system}:{p.fmt.name}", fn,
                         p.index | (p.fmt.id & 0xFFFF) << 16 | max(p.fmt.fixed_size, 8) << 32)
              for p in group]
    return text, attach


def _id_predicate(macro: str, ids: tuple[int, ...] | None, map_name: str,
                  maps: dict[str, tuple[int, ...]], decls: list[str]) -> str:
    if ids is None:
        return f"#define {macro}(x) (1)"
    if len(ids) <= INLINE_ID_LIMIT:
        alts = " || ".join(f"(x) == {int(i)}U" for i in ids) or "0"
        return f"#define {macro}(x) ({alts})"
    maps[map_name] = tuple(int(i) for i in ids)
    decls.append(f"BPF_HASH({map_name}, u32, u8, {len(ids)});")
    # BCC rewrites map calls only outside macros: the lookup lives in a function.
    fn = f"{map_name}_has"
    decls.append(f"static __always_inline int {fn}(u32 id)\n{{\n\treturn {map_name}.lookup(&id) != 0;\n}}")
    return f"#define {macro}(x) {fn}(x)"


def _cpu_function(prog: TracepointProgram) -> tuple[str, str]:
    if prog.cpus is None:
        return "ep_any_cpu", ""
    fn = f"ep_sel{prog.index}_want_cpu"
    if not prog.cpus:
        expr = "0"
    elif max(prog.cpus) < 64:
        mask = 0
        for c in prog.cpus:
            mask |= 1 << c
        expr = f"cpu < 64 && ((0x{mask:x}ULL >> cpu) & 1)"
    else:
        expr = " || ".join(f"cpu == {int(c)}" for c in prog.cpus)
    return fn, snippet("cpu_filter.c").substitute(fn=fn, cpus=format_id_list(prog.cpus), expr=expr)


def _dynamic_size(fmt: EventFormat) -> str:
    parts = []
    for f in fmt.fields:
        if f.kind in (FieldKind.DYN_STRING, FieldKind.DYN_ARRAY):
            parts.append(snippet("dynamic_size.c").substitute(
                field=ident(f.name), kind="__data_loc", rel_note="", offset=f.offset, base=""))
        elif f.kind in (FieldKind.REL_STRING, FieldKind.REL_ARRAY):
            parts.append(snippet("dynamic_size.c").substitute(
                field=ident(f.name), kind="__rel_loc",
                rel_note=", after the locator", offset=f.offset, base=f"{f.offset + 4} + "))
    return "".join(parts).rstrip("\n")


def _task_check(want_cpu: str, task: TaskFilter, done: str = "EP_DONE") -> str:
    """The first lines of a program: leave early for tasks and CPUs the run does not watch."""
    conds = []
    if task.tgids is not None or task.tids is not None:
        conds.append("!ep_task_wanted()")
    if want_cpu != "ep_any_cpu":
        conds.append(f"!{want_cpu}(bpf_get_smp_processor_id())")
    if not conds:
        return "\t/* every task, every CPU */"
    return f"\tif ({' || '.join(conds)})\n\t\treturn {done};"


def _direct_copy(size: int) -> str:
    """Statements copying bytes [8, size) of ctx to dst with aligned loads of constant offset."""
    lines = []
    words = size // 8
    if words > 1:
        lines += ["#pragma unroll",
                  f"\t\tfor (int i = 1; i < {words}; i++)",
                  "\t\t\t((u64 *)dst)[i] = ((u64 *)ctx)[i];"]
    off = max(words, 1) * 8
    for width, ctype in ((4, "u32"), (2, "u16"), (1, "u8")):
        if size - off >= width:
            lines.append(f"\t\t*({ctype} *)(dst + {off}) = *({ctype} *)(ctx + {off});")
            off += width
    return "\n".join(lines) or "\t\t/* nothing after the common header */"


def _program_function(prog: TracepointProgram, want_cpu: str, task: TaskFilter) -> str:
    raw_size = max(prog.fmt.fixed_size, 8)
    common = dict(
        index=prog.index,
        comment=c_comment(prog.label),
        fn=prog.fn_name,
        want_cpu=want_cpu,
        filter_fn=prog.filter_fn,
        raw_size=raw_size,
        event_id=prog.fmt.id & 0xFFFF,
        task_check=_task_check(want_cpu, task),
    )
    if not prog.needs_scratch:
        return snippet("tracepoint.c").substitute(common, words=(raw_size + 7) // 8,
                                                  copy=_direct_copy(raw_size))
    return snippet("tracepoint_scratch.c").substitute(
        common,
        dynamic_size=_dynamic_size(prog.fmt) or "\t/* fixed size: no __data_loc fields */",
        kernel_stack=int(prog.kernel_stack),
        user_stack=int(prog.user_stack),
        max_stack=max(1, min(int(prog.max_stack), DEFAULT_MAX_STACK)),
        python_stack=PYTHON_STACK_CALL.format(raw_padded="raw_padded") if prog.python_stack else "",
    )


def _int_field(fmt: EventFormat, name: str):
    f = fmt.field(name)
    return f if f is not None and f.kind is FieldKind.INT and f.size == 4 else None


def _comm_functions(comms: CommTracker) -> list[tuple[str, str, str]]:
    """(tracepoint, function name, C) of each comm-map writer this kernel's formats allow."""
    out = []
    if comms.exec_fmt is not None:
        out.append(("sched:sched_process_exec", "ep_comm_exec", snippet_text("comm_exec.c")))
    child = _int_field(comms.fork_fmt, "child_pid") if comms.fork_fmt is not None else None
    if child is not None:
        out.append(("sched:sched_process_fork", "ep_comm_fork",
                    snippet("comm_fork.c").substitute(child_pid_offset=int(child.offset))))
    newcomm = comms.rename_fmt.field("newcomm") if comms.rename_fmt is not None else None
    if newcomm is not None and newcomm.kind in (FieldKind.STRING, FieldKind.DYN_STRING):
        # A rename may name another task (a write to /proc/PID/comm): the record's pid says
        # which. A format without that field renames the current task only.
        pid = _int_field(comms.rename_fmt, "pid")
        tid = f"*(u32 *)(ctx + {int(pid.offset)})" if pid is not None else "(u32)bpf_get_current_pid_tgid()"
        if newcomm.kind is FieldKind.STRING:
            src = f"ctx + {int(newcomm.offset)}"
        else:
            src = f"ctx + (*(u32 *)(ctx + {int(newcomm.offset)}) & 0xffff)"
        out.append(("task:task_rename", "ep_comm_rename",
                    snippet("comm_rename.c").substitute(tid=tid, newcomm=src)))
    return out


def generate_program(programs: list[TracepointProgram], task: TaskFilter, *,
                     ring_pages: int, wakeup_every: int,
                     comms: CommTracker | None = None, perf_buffer: bool = False,
                     task_fsbase_offset: int | None = None) -> GeneratedProgram:
    """The whole C text for a run (prelude, task filter, one function per tracepoint, and the
    comm tracker's functions when ``comms`` is given). Records go to a BPF ring buffer of
    ``ring_pages`` pages, or with ``perf_buffer`` to a perf event array (bpf/ring_perf.h).
    Programs with ``python_stack`` need ``task_fsbase_offset``: task_struct.thread.fsbase in
    this kernel's BTF (bpf/python_stack.h)."""
    maps: dict[str, tuple[int, ...]] = {}
    decls: list[str] = []
    max_stack = max((p.max_stack for p in programs if p.kernel_stack or p.user_stack),
                     default=1)
    defines = [
        "/* Generated by ebpfprof: one BPF function per tracepoint selector. */",
    ]
    if not perf_buffer:          # a perf buffer's size and wakeups are its perf events'
        defines += [f"#define EP_RING_PAGES {int(ring_pages)}",
                    f"#define EP_WAKEUP_EVERY {int(wakeup_every)}"]
    defines.append(f"#define EP_MAX_STACK {int(min(max_stack, DEFAULT_MAX_STACK))}")
    task_defs = [
        _id_predicate("EP_WANT_TGID", task.tgids, "ep_tgids", maps, decls),
        _id_predicate("EP_WANT_TID", task.tids, "ep_tids", maps, decls),
    ]
    body = ["\n".join(defines), snippet_text("ep_sample.h").rstrip("\n"),
            snippet_text("prelude.h").rstrip("\n"),
            snippet_text("ring_perf.h" if perf_buffer else "ring_bpf.h").rstrip("\n")]
    if any(isinstance(p, ProbeProgram) for p in programs):
        body.append(snippet_text("probe_prelude.h").rstrip("\n"))
    if decls:
        body.append("\n".join(decls))
    body.append("\n".join(task_defs))
    body.append(snippet_text("task_filter.h").rstrip("\n"))
    if any(p.needs_scratch for p in programs):
        body.append(snippet_text("scratch.h").rstrip("\n"))
    if any(p.python_stack for p in programs):
        if task_fsbase_offset is None:
            raise ValueError("the Python stack walk needs task_struct.thread.fsbase's offset (BTF)")
        body.append(f"#define EP_TASK_FSBASE_OFF {int(task_fsbase_offset)}\n"
                    f"#define EP_PY_MAX_FRAMES {PY_MAX_FRAMES}\n" + snippet_text("python_stack.h").rstrip("\n"))
    attach: list[Attachment] = []
    shared = _shared_groups(programs)
    in_groups = {p.index for group in shared.values() for p in group}
    for prog in programs:
        if prog.index in in_groups and prog.index not in shared:
            continue                                  # its group's function serves it
        want_cpu, cpu_code = _cpu_function(prog)
        if cpu_code:
            body.append(cpu_code.rstrip("\n"))
        if prog.index in shared:
            text, group_attach = _shared_function(shared[prog.index], want_cpu, task)
            body.append(text.rstrip("\n"))
            attach.extend(group_attach)
            continue
        if prog.filter is not None:
            if not isinstance(prog.filter.c_code, CCode):
                raise TypeError("a filter's C must come from the filter compiler")
            body.append(prog.filter.c_code.text.rstrip("\n"))
        if isinstance(prog, ProbeProgram):
            body.append(probe_function(prog, want_cpu, _task_check(want_cpu, task, "EP_PROBE_DONE")).rstrip("\n"))
            attach.append(Attachment(prog.target.describe(), prog.fn_name, probe=prog.target))
            continue
        body.append(_program_function(prog, want_cpu, task).rstrip("\n"))
        attach.append(Attachment(f"{prog.fmt.system}:{prog.fmt.name}", prog.fn_name))
    silent = []
    writers = _comm_functions(comms) if comms is not None else []
    if writers:
        body.append(snippet_text("comm_map.h").rstrip("\n"))
    for tracepoint, fn, code in writers:
        body.append(code.rstrip("\n"))
        attach.append(Attachment(tracepoint, fn))
        silent.append(fn)
    return GeneratedProgram("\n\n".join(body) + "\n", attach, maps, tuple(silent))
