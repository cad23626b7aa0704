"""Wire one run together: specs → sources → rings → reader → the script's handlers.

``run_python(config)`` is the whole ``ebpfprof python`` command. ``TracingSession`` holds the
run's sources; it is a context manager, and leaving it (normally, by an exception, or by a
signal turned into one) closes every source, whatever it had got to.

Every run goes the same way, whoever its handlers are: ``resolve_run`` (checks, selectors),
``open_run`` (sources and event classes for a handlers namespace), ``start_run`` (gates open,
``__init__``, the Dispatcher), the Dispatcher's loop, ``say_stopped``. ``run_handlers`` is that
whole path for a command: ``ebpfprof python`` gives it the script's module, ``ebpfprof trace``
a printing ``__sample__`` (commands/trace.py); the Python API (api.py) steps the same
Dispatcher from the caller's loop.

The order of a run, and why:
  1. resolve every selector, load the script       mistakes reported before the kernel is touched
  2. open every source, gated                      compiled, attached, mmapped: recording nothing
  3. start every source                            all begin at (nearly) one instant
  4. the script's __init__()                       events meanwhile wait in the rings
  5. the run loop, until a stop
  6. stop every source, drain what is left         nothing generated in the run is unaccounted
  7. close every source, then __exit__()
"""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from typing import Callable

from ebpfprof import _ring
from ebpfprof.errors import ScriptError, UsageError
from ebpfprof.kernel import tracefs
from ebpfprof.options import RunConfig, tgid_of, traced_processes
from ebpfprof.output.printing import EventPrinter
from ebpfprof.resolve import resolve_selectors
from ebpfprof.run.dispatch import Dispatcher, call_callback
from ebpfprof.run.events import event_classes
from ebpfprof.run.script import Callbacks, find_callbacks, load_module, print_script_traceback
from ebpfprof.run.signals import run_signals
from ebpfprof.sources import Source, sources_for

__all__ = ["run_python", "run_handlers", "resolve_run", "open_run", "start_run", "say_stopped",
           "TracingSession"]


class TracingSession:
    """The sources of a run and the reader of their rings.

    Entering opens every source (gated) and hands its rings to the reader; ``start()`` opens
    every gate; ``stop()`` closes them. Leaving closes every source and the reader.
    """

    def __init__(self, sources: list[Source], classes: list, lost_handler: Callable | None) -> None:
        self.sources = sources
        self.classes = classes
        self.lost_handler = lost_handler
        self.reader = None

    def __enter__(self) -> "TracingSession":
        try:
            self.reader = _ring.Reader(self.classes, lost_handler=self.lost_handler)
            for source in self.sources:
                source.open()
                source.add_rings(self.reader)
        except BaseException:
            self.close()
            raise
        return self

    def start(self) -> None:
        for source in self.sources:
            source.start()

    def stop(self) -> None:
        for source in self.sources:
            source.stop()

    @property
    def wait_fds(self) -> list[int]:
        return [fd for source in self.sources for fd in source.wait_fds]

    def pending_lost(self) -> int:
        """Losses no record reported, summed over the sources (read after the last drain)."""
        return sum(source.pending_lost() for source in self.sources)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        while self.sources:
            self.sources.pop().close()

    def __exit__(self, *exc) -> None:
        self.close()


def _warn(config: RunConfig) -> Callable[[str], None]:
    def log(msg: str) -> None:
        if config.verbose >= 0:
            sys.stderr.write(f"ebpfprof: {msg}\n")
    return log


def _install_hooks(sources: list[Source], config: RunConfig) -> None:
    from ebpfprof.symbols import default_resolver

    def task_comm(tid: int) -> str | None:
        # Asked only when a script prints: the sources' comm maps know tasks gone since.
        for source in sources:
            comm = source.task_comm(tid)
            if comm:
                return comm
        return None

    printer = EventPrinter(task_comm=task_comm)
    for pid in traced_processes(config):
        printer.remember_tasks_of(pid)
    # A profiler's Python stacks come from a side ring: its samples are asked about even
    # without frames of their own
    side = any(getattr(spec, "python_stack", False) and spec.source == "perf"
               for source in sources for spec in source.specs)
    _ring.set_hooks(print_event=printer, resolve_callchain=default_resolver(), callchain_always=side)
    real = time.clock_gettime_ns(time.CLOCK_REALTIME)
    mono = time.clock_gettime_ns(time.CLOCK_MONOTONIC)
    _ring.set_realtime_offset(real - mono)


def _preload_symbols(config: RunConfig, specs: list) -> None:
    """Read the -p/-t processes' mappings while they run: their samples and stacks are
    decoded later, maybe after they exit (then /proc/PID/maps is gone). With user
    callchains, their files' symbol tables are read now too: the first event's frames would
    otherwise take that long (0.1 s for python3.11, 0.2 s for the kernel's), while later
    events wait in the ring (and a Python process may exit with the code objects they name)."""
    from ebpfprof.symbols import default_resolver

    def wanted(kind: str, option: bool) -> bool:
        return (config.call_graph and option) or any(
            getattr(getattr(spec, "program", None), kind, False) for spec in specs)

    user_frames = wanted("user_stack", config.user_callchain)
    if wanted("kernel_stack", config.kernel_callchain):
        default_resolver().kernel          # /proc/kallsyms: 0.2 s, better now than at the first event
    for pid in traced_processes(config):
        try:
            default_resolver().user.preload(pid, symbols=user_frames)
        except Exception:        # BCC's cache for a process that just exited: frames say Unknown
            pass


def resolve_run(config: RunConfig) -> tuple[RunConfig, list]:
    """Steps every run shares before its handlers exist: the privileges and BCC it needs, its
    selectors resolved (every mistake reported before the kernel is touched), -p/-t checked.
    Returns the config (-p thread ids made processes) and the specs, in class-index order."""
    from ebpfprof.bcc_loader import headers_warning, import_bcc
    from ebpfprof.kernel.features import kernel_headers, require_privileges

    log = _warn(config)
    require_privileges()
    import_bcc()
    kernel_headers()
    specs = resolve_selectors(config.events, config, warn=log)
    _check_tasks_exist(config)
    config = _processes_of(config, log)
    # stderr is for problems: the generic-headers note is -v only (a compile failure repeats it)
    warning = headers_warning() if config.verbose >= 1 else None
    if warning:
        log(warning)
    if config.verbose >= 1 and tracefs.mounted_by_us:
        log(f"mounted tracefs at {tracefs.tracefs_root()}")
    return config, specs


def open_run(config: RunConfig, specs: list, handlers) -> tuple[TracingSession, Callbacks]:
    """The run's session (not entered yet) and callbacks, for ``handlers``: a module, or any
    object whose ``vars()`` maps the script's names (``sys__name``, ``__sample__``,
    ``__exit__``...) to callables. Each class gets its own handler, else ``__sample__``."""
    callbacks = find_callbacks(handlers)
    sources = sources_for(specs, config)
    _install_hooks(sources, config)
    _preload_symbols(config, specs)
    # In the order the selectors were resolved: a record names its class by that index
    classes = event_classes([spec.event for spec in specs], handlers, callbacks)
    unhandled = [c.name for c in classes if c.handler is None]
    if unhandled:
        _warn(config)(f"no handler and no __sample__ for {', '.join(unhandled)}: those events are dropped")
    return TracingSession(sources, classes, callbacks.lost), callbacks


def start_run(session: TracingSession, callbacks: Callbacks, config: RunConfig) -> Dispatcher:
    """Open every gate of an entered session, then __init__(); the run's Dispatcher."""
    session.start()
    if config.verbose >= 1:      # said once recording: tests start workloads on it
        for source in session.sources:
            _warn(config)(f"attached {source.describe()}")
    _call_init(callbacks)
    return Dispatcher(session, session.classes, callbacks, config)


def say_stopped(session: TracingSession, reason: str, config: RunConfig, level: int = 1) -> None:
    """Why the run stopped, its events and exact losses, from ``level`` of -v up (stderr)."""
    if config.verbose < level:
        return
    log = _warn(config)
    log(f"stopping: {reason}; {session.reader.delivered} events delivered, {session.reader.lost} lost")
    for source in session.sources:
        for note in source.stop_notes():
            log(note)


def run_handlers(config: RunConfig, specs: list, handlers,
                 report_stop: Callable[[TracingSession, str], None] | None = None) -> int:
    """A whole run of ``handlers`` (see open_run) until it stops; returns the exit status.
    ``report_stop(session, reason)`` says how it stopped (default: say_stopped's -v line)."""
    if run_signals.stop_requested:      # stopped while starting: nothing ran yet
        return 0
    session, callbacks = open_run(config, specs, handlers)
    with session:
        if run_signals.stop_requested:
            return 0
        dispatcher = start_run(session, callbacks, config)
        reason = dispatcher.run()
        if report_stop is None:
            say_stopped(session, reason, config)
        else:
            report_stop(session, reason)
    sys.stdout.flush()
    call_callback(callbacks.exit)
    sys.stdout.flush()
    return dispatcher.exit_code or 0


def run_python(config: RunConfig) -> int:
    """`ebpfprof python`: returns the exit status."""
    config, specs = resolve_run(config)
    if config.module is None:
        raise ScriptError("no script given", hint="ebpfprof python -e EVENT script.py (or `help` for a template)")
    # The script loads first: its mistakes are reported before the 0.3 s compile. (Not in
    # parallel: libbcc changes the working directory while it compiles.)
    module = load_module(config.module, config.args)
    if config.verbose >= 0:      # perf-prof's line, on stdout: its users' tooling expects it
        print(f"Loaded module: {getattr(module, '__file__', None) or config.module}", flush=True)
    return run_handlers(config, specs, module)


def _check_tasks_exist(config: RunConfig) -> None:
    for option, ids, what in (("-p", config.pids, "process"), ("-t", config.tids, "thread")):
        for i in ids or ():
            if not os.path.exists(f"/proc/{i}"):
                raise UsageError(f"{option}: no {what} {i} is running",
                                 hint="check with: ps -eLo pid,tid,comm | grep ...")


def _processes_of(config: RunConfig, log: Callable[[str], None]) -> RunConfig:
    """-p takes processes: a thread id given to it stands for its process, as with perf
    (which follows /proc/TID/task, the whole thread group). Said with -v; -t is for threads."""
    if not config.pids:
        return config
    pids: list[int] = []
    for pid in config.pids:
        tgid = tgid_of(pid)
        if tgid is not None and tgid != pid:
            if config.verbose >= 1:
                log(f"-p {pid}: thread {pid} is of process {tgid}: tracing process {tgid} "
                    f"(-t {pid} for the thread alone)")
            pid = tgid
        if pid not in pids:
            pids.append(pid)
    return dataclasses.replace(config, pids=tuple(pids))


def _call_init(callbacks: Callbacks) -> None:
    """__init__ runs once every source records: events it causes, or that happen while it
    runs, wait in the rings. If it raises, the session detaches and nothing is delivered."""
    if callbacks.init is None:
        return
    try:
        callbacks.init()
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as e:
        print_script_traceback(e)
        raise ScriptError("the script's __init__() raised an exception; nothing was delivered") from None
