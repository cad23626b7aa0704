"""Wire one run together: selectors → program → rings → reader → the script's handlers.

``run_python(config)`` is the whole ``ebpfprof python`` command. ``TracingSession`` is the part
that holds kernel resources; it is a context manager, and leaving it (normally, by an
exception, or by a signal turned into one) detaches every program and unmaps every ring.
"""
from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from typing import Callable

from . import _ring
from .codegen import TaskFilter, TracepointProgram, generate_program
from .config import RunConfig
from .dispatch import Dispatcher, call_callback
from .errors import ScriptError, UsageError
from .kernel.event_format import EventFormat, FieldKind
from .printing import EventPrinter
from .kernel import tracefs
from .script import Callbacks, find_callbacks, find_handler, load_module, print_script_traceback
from .selector.resolve import ResolvedTracepoint, resolve_selectors

__all__ = ["run_python", "TracingSession", "EventInfo", "event_classes"]

_FIELD_CODES = {
    FieldKind.INT: _ring.FIELD_INT,
    FieldKind.STRING: _ring.FIELD_STR,
    FieldKind.DYN_STRING: _ring.FIELD_DYN_STR,
    FieldKind.REL_STRING: _ring.FIELD_REL_STR,
    FieldKind.ARRAY: _ring.FIELD_ARRAY,
    FieldKind.DYN_ARRAY: _ring.FIELD_DYN_ARRAY,
    FieldKind.REL_ARRAY: _ring.FIELD_REL_ARRAY,
    FieldKind.OTHER: _ring.FIELD_ARRAY,
}


@dataclass(frozen=True)
class EventInfo:
    """What Python keeps about an event class (reachable from an event for print())."""

    format: EventFormat
    resolved: ResolvedTracepoint | None = None
    # BPF cannot read the record's common header: irq/preempt state is unknown (bpf/prelude.h)
    header_known: bool = False


def field_specs(fmt: EventFormat) -> list[tuple[str, int, int, int, bool]]:
    return [(f.name, _FIELD_CODES[f.kind], f.offset, f.size, f.signed) for f in fmt.fields]


def event_classes(resolved: list[ResolvedTracepoint], module, callbacks: Callbacks) -> list:
    """One EventClass per selector, with its handler (specific, else __sample__, else None)."""
    classes = []
    for r in resolved:
        handler = find_handler(module, r.handler) if module is not None else None
        if handler is None:
            handler = callbacks.sample
        classes.append(_ring.EventClass(r.event_name, handler, field_specs(r.format),
                                        EventInfo(r.format, r)))
    return classes


def ring_size(config: RunConfig) -> int:
    """-m pages per CPU, as one shared ring: a power of two."""
    size = config.mmap_pages * 4096 * max(1, config.nr_cpus)
    return 1 << (size - 1).bit_length()


def build_program(config: RunConfig, resolved: list[ResolvedTracepoint]):
    """Generate the run's BPF C and compile it (its maps exist afterwards; nothing is attached)."""
    from .sources.bpf import LoadedProgram

    ring_bytes = ring_size(config)
    records = ring_bytes // 64
    wakeup_every = max(64, records // (4 * max(1, config.nr_cpus)))
    programs = [TracepointProgram(
        index=r.index, fmt=r.format, label=r.selector.text, filter_code=r.filter_code,
        filter_fn=r.filter_fn, cpus=r.cpus, kernel_stack=r.kernel_stack,
        user_stack=r.user_stack, max_stack=r.max_stack) for r in resolved]
    generated = generate_program(programs, TaskFilter(config.pids, config.tids),
                                 ring_pages=ring_bytes // 4096, wakeup_every=wakeup_every)
    if config.verbose >= 2:
        sys.stderr.write(generated.text)
    return LoadedProgram(generated, debug=config.verbose >= 3)


class TracingSession:
    """An attached program and the reader of its ring. Use as a context manager: leaving it
    detaches the program and unmaps the ring, whatever the reason."""

    def __init__(self, config: RunConfig, program, classes: list,
                 lost_handler: Callable | None) -> None:
        self.config = config
        self.program = program
        self.classes = classes
        self.lost_handler = lost_handler
        self.reader = None

    def __enter__(self) -> "TracingSession":
        try:
            self.reader = _ring.Reader(self.classes, lost_handler=self.lost_handler)
            self.reader.add_bpf_ring(self.program.ring_fd, ring_size(self.config))
            self.program.attach()
        except BaseException:
            self.close()
            raise
        return self

    @property
    def wait_fds(self) -> list[int]:
        return [self.program.ring_fd] if self.program else []

    def pending_lost(self) -> int:
        """Losses not yet reported in the stream: after the last record, or skipped by the
        kernel (read once, at the end of the run)."""
        return self.program.lost_pending() + self.program.missed() if self.program else 0

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self.program is not None:
            program, self.program = self.program, None
            program.close()

    def __exit__(self, *exc) -> None:
        self.close()


def _warn(config: RunConfig) -> Callable[[str], None]:
    def log(msg: str) -> None:
        if config.verbose >= 0:
            sys.stderr.write(f"ebpfprof: {msg}\n")
    return log


def _install_hooks() -> None:
    from .kernel.symbols import default_resolver

    _ring.set_hooks(print_event=EventPrinter(), resolve_callchain=default_resolver())
    real = time.clock_gettime_ns(time.CLOCK_REALTIME)
    mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    _ring.set_realtime_offset(real - mono)


def run_python(config: RunConfig) -> int:
    """`ebpfprof python`: returns the exit status."""
    from .kernel.features import kernel_headers, require_privileges
    from .sources.bpf import headers_warning, import_bcc

    log = _warn(config)
    require_privileges()
    import_bcc()
    kernel_headers()
    resolved = resolve_selectors(config.events, config)
    _check_tasks_exist(config)
    if config.module is None:
        raise ScriptError("no script given", hint="ebpfprof python -e EVENT script.py (or `help` for a template)")
    warning = headers_warning()
    if warning:
        log(warning)
    if config.verbose >= 1 and tracefs.mounted_by_us:
        log(f"mounted tracefs at {tracefs.tracefs_root()}")

    # The script loads first: its mistakes are reported before the 0.3 s compile. (Not in
    # parallel: libbcc changes the working directory while it compiles.)
    module = load_module(config.module, config.args)
    callbacks = find_callbacks(module)
    _install_hooks()
    classes = event_classes(resolved, module, callbacks)
    program = build_program(config, resolved)
    try:
        unhandled = [c.name for c in classes if c.handler is None]
        if unhandled:
            log(f"no handler and no __sample__ for {', '.join(unhandled)}: those events are dropped")
        _call_init(callbacks)
    except BaseException:
        program.close()
        raise

    with TracingSession(config, program, classes, callbacks.lost) as session:
        if config.verbose >= 1:
            names = ", ".join(r.format.full_name for r in resolved[:8]) + (", ..." if len(resolved) > 8 else "")
            log(f"attached {len(resolved)} tracepoint(s): {names}")
        dispatcher = Dispatcher(session.reader, classes, callbacks, config, session.wait_fds,
                                pending_lost=session.pending_lost)
        reason = dispatcher.run()
        if config.verbose >= 1:
            log(f"stopping: {reason}; {session.reader.delivered} events delivered, {session.reader.lost} lost")
    sys.stdout.flush()
    call_callback(callbacks.exit)
    sys.stdout.flush()
    return dispatcher.exit_code or 0


def _check_tasks_exist(config: RunConfig) -> None:
    for option, ids, what in (("-p", config.pids, "process"), ("-t", config.tids, "thread")):
        for i in ids or ():
            if not os.path.exists(f"/proc/{i}"):
                raise UsageError(f"{option}: no {what} {i} is running",
                                 hint="check with: ps -eLo pid,tid,comm | grep ...")


def _call_init(callbacks: Callbacks) -> None:
    """__init__ runs before anything is attached: if it fails, nothing was."""
    if callbacks.init is None:
        return
    try:
        callbacks.init()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        print_script_traceback(e)
        raise ScriptError("the script's __init__() raised an exception; nothing was attached") from None
