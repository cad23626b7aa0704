"""The command line: click commands → a frozen RunConfig → the command's run. No logic here.

    ebpfprof python -e EVENT[,EVENT...] [OPTIONS] [--] MODULE [ARGS...]
    ebpfprof python -e EVENT[,EVENT...] help
    ebpfprof trace -e EVENT[,EVENT...] [OPTIONS]          print every event (commands/trace.py)
    ebpfprof list [-v] [PATTERN...]                       what events exist (commands/list_events.py)

Options may also follow MODULE (``script.py -i 1000``), as perf-prof accepts them; everything
after ``--`` belongs to the script.
"""
from __future__ import annotations

import os
import sys

import click

from ebpfprof import __version__
from ebpfprof.options import DEFAULT_MMAP_PAGES, RunConfig, check_mmap_pages
from ebpfprof.errors import EbpfprofError
from ebpfprof.lang.idlist import parse_id_list

__all__ = ["main", "cli"]


def _id_list(what: str):
    def convert(ctx, param, value):
        if value is None:
            return None
        try:
            return parse_id_list(value, what)
        except ValueError as e:
            raise click.BadParameter(str(e)) from None
    return convert


def _power_of_two(ctx, param, value):
    if value is None:
        return DEFAULT_MMAP_PAGES
    if value < 1 or value & (value - 1):
        if value <= 1:
            raise click.BadParameter(f"{value} is not a power of two (try 1)")
        raise click.BadParameter(f"{value} is not a power of two (try {1 << (value.bit_length() - 1)} "
                                 f"or {1 << value.bit_length()})")
    check_mmap_pages(value, os.cpu_count() or 1)     # the ring's limits: before anything loads
    return value


def _positive(ctx, param, value):
    if value is not None and value <= 0:
        raise click.BadParameter(f"{value} is not a positive number")
    return value


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="ebpfprof")
def cli() -> None:
    """Process live kernel events with your own Python script."""


# The options of a run, shared by `python` and `trace` (declared once: the same names, checks
# and help in both). run_config() turns their values into the RunConfig.
_RUN_OPTIONS = (
    click.option("-e", "--event", "events", multiple=True, required=True, metavar="EVENT[,EVENT...]",
                 help="Event selectors: sys:name[/filter/ATTR/], e.g. 'sched:sched_wakeup/pid>1000/'."),
    click.option("-C", "--cpus", callback=_id_list("-C list"), metavar="LIST", help="Only these CPUs (0-3,6)."),
    click.option("-p", "--pids", callback=_id_list("-p list"), metavar="LIST",
                 help="Only these processes (all their threads); exit when they have all exited."),
    click.option("-t", "--tids", callback=_id_list("-t list"), metavar="LIST", help="Only these threads."),
    click.option("-i", "--interval", "interval_ms", type=int, callback=_positive, metavar="MS",
                 help="Call __interval__() every MS milliseconds (trace: print the statistics)."),
    click.option("-m", "--mmap-pages", type=int, callback=_power_of_two, metavar="N",
                 help=f"Ring-buffer pages per CPU, a power of two (default {DEFAULT_MMAP_PAGES})."),
    click.option("-N", "--exit-N", "exit_after", type=int, callback=_positive, metavar="N",
                 help="Exit after N events were delivered."),
    click.option("--order", is_flag=True, help="Deliver events of all CPUs in timestamp order."),
    click.option("--perf-buffer", is_flag=True, envvar="EBPFPROF_PERF_BUFFER",
                 help="BPF programs write to per-CPU perf rings, not the BPF ring buffer (chosen by "
                      "itself on kernels before 5.8; EBPFPROF_PERF_BUFFER=1 is the same)."),
    click.option("-g", "--call-graph", is_flag=True, help="Callchains on every event."),
    click.option("--kernel-callchain/--no-kernel-callchain", default=True, show_default=True,
                 help="Kernel frames in callchains."),
    click.option("--user-callchain/--no-user-callchain", default=True, show_default=True,
                 help="User-space frames in callchains."),
    click.option("--python-callchain", is_flag=True,
                 help="Python frames (CPython 3.11-3.13) in callchains, read in the kernel at each "
                      "event (ATTR python-stack: one selector)."),
    click.option("-v", "--verbose", count=True, help="More diagnostics (-vv: print the BPF program)."),
    click.option("-q", "--quiet", is_flag=True, help="Fewer diagnostics."),
)


def run_options(command):
    """Decorate a command with every option of a run (_RUN_OPTIONS), in that order."""
    for option in reversed(_RUN_OPTIONS):
        command = option(command)
    return command


def run_config(*, events, cpus, pids, tids, interval_ms, mmap_pages, exit_after, order, perf_buffer,
               call_graph, kernel_callchain, user_callchain, python_callchain, verbose, quiet,
               module: str | None = None, args: tuple[str, ...] = ()) -> RunConfig:
    """The RunConfig of the run options' values (and a script's MODULE and ARGS)."""
    return RunConfig(
        events=tuple(events), module=module, args=tuple(args),
        cpus=cpus, pids=pids, tids=tids, interval_ms=interval_ms, mmap_pages=mmap_pages,
        exit_after=exit_after, order=order, perf_buffer=perf_buffer, call_graph=call_graph,
        kernel_callchain=kernel_callchain, user_callchain=user_callchain,
        python_callchain=python_callchain, verbose=-1 if quiet else verbose,
    )


@cli.command(context_settings={"allow_interspersed_args": True})
@run_options
@click.argument("module_and_args", nargs=-1, type=click.UNPROCESSED, metavar="[--] MODULE [ARGS...]")
def python(module_and_args, **options):
    """Run MODULE's handlers on live events (perf-prof python).

    MODULE is a script (x.py), a compiled module (x.so) or a module name; `help` instead
    prints a ready-to-edit script for the selected events.
    """
    if not module_and_args:
        raise click.UsageError("missing MODULE: a script to run, or `help` for a template")
    module, *args = module_and_args
    config = run_config(**options, module=None if module == "help" else module, args=tuple(args))
    if config.module is None:
        from ebpfprof.output.template import run_help

        return run_help(config)
    from ebpfprof.bcc_loader import preload_bcc
    from ebpfprof.run.session import run_python

    preload_bcc()     # overlaps loading libbcc with reading formats and the script
    return run_python(config)


@cli.command()
@run_options
def trace(**options):
    """Print every event, perf-prof trace's way: no script needed.

    Each event is one line as event.print() writes it (with -g, its callchain below it).
    When the run stops (Ctrl-C, -N, the -p processes' end), stderr gets one line: why, the
    events printed and the events lost.
    """
    config = run_config(**options)
    from ebpfprof.bcc_loader import preload_bcc
    from ebpfprof.commands.trace import run_trace

    preload_bcc()
    return run_trace(config)


@cli.command(name="list")
@click.argument("patterns", nargs=-1, metavar="[PATTERN...]")
@click.option("-v", "--verbose", is_flag=True, help="Each event's fields, with their C and Python types.")
def list_(patterns, verbose):
    """List events: tracepoints, profilers, probe targets.

    PATTERN: sys:name with wildcards ('sched:*wake*'), a name alone ('sched', 'profile'), or
    uprobe:FILE:FUNC-PATTERN for the functions of a binary or library ('uprobe:c:mall*').
    Without one: every tracepoint and profiler. Nothing matching is an error (exit 1).
    """
    from ebpfprof.commands.list_events import run_list

    return run_list(patterns, verbose=verbose)


def main(argv: list[str] | None = None) -> int:
    # Before anything slow: a stop or SIGUSR2 at any moment is handled (run/signals.py).
    from ebpfprof.run.signals import run_signals

    installed = run_signals.install()     # already, by __main__ when run as a command
    try:
        return _main(argv)
    finally:
        if installed:
            run_signals.restore()


def _main(argv: list[str] | None) -> int:
    try:
        rv = cli.main(args=argv, prog_name="ebpfprof", standalone_mode=False)
        return rv if isinstance(rv, int) else 0
    except click.exceptions.NoSuchOption as e:
        sys.stderr.write(f"ebpfprof: error: {e.format_message()}\n")
        if e.ctx is not None and e.ctx.command.name == "python":
            sys.stderr.write("hint: arguments for the script go after --: ebpfprof python -e EVENT -- script.py --its-option\n")
        else:
            cmd = e.ctx.command_path if e.ctx else "ebpfprof"
            sys.stderr.write(f"Try '{cmd} --help'.\n")
        return 2
    except click.exceptions.UsageError as e:
        sys.stderr.write(f"ebpfprof: error: {e.format_message()}\n")
        cmd = e.ctx.command_path if e.ctx else "ebpfprof"
        sys.stderr.write(f"Try '{cmd} --help'.\n")
        return 2
    except click.exceptions.Abort:
        return 130
    except click.exceptions.Exit as e:
        return e.exit_code
    except EbpfprofError as e:
        sys.stdout.flush()
        sys.stderr.write(e.format() + "\n")
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:      # the reader of stdout is gone (| head): nothing more to say
        from ebpfprof.commands.trace import silence_stdout

        silence_stdout()
        return 0


def entry() -> None:
    sys.exit(main())
