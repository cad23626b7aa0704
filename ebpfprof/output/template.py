"""``ebpfprof python -e SELECTORS help``: a complete, runnable script for exactly those selectors."""
from __future__ import annotations

import shlex
import sys

from ebpfprof.options import RunConfig
from ebpfprof.resolve import resolve_selectors
from ebpfprof.resolve.spec import EventSpec

__all__ = ["script_template", "run_help"]

_HEADER = '''\
#!/usr/bin/env -S {command}
#
# ebpfprof python script for: {events_comment}
# Run it with:
#   {command} THIS_FILE.py
# (or make it executable and run it directly). Callbacks you do not need can be deleted.
#
# Every event is a PerfEvent: read fields as event.name or event['name'], decoded on access.
# Built-in fields of every event:
#   _pid, _tid : int   process and thread id
#   _time      : int   CLOCK_MONOTONIC timestamp, ns
#   _cpu       : int   CPU the event happened on
#   _period    : int   sample period (1 for tracepoints)
#   _realtime  : int   wall-clock time, ns (for display)
#   _event     : str   selector name ("sys:name", or "sys:alias")
#   _callchain : list  frames {{'addr','symbol','offset','kernel','dso'}} (-g or /stack/), else []
# Also: event.get(f, default), 'f' in event, keys()/values()/items(), to_dict(), print().

from collections import Counter

counts = Counter()      # events seen, per selector
intervals = 0


def __init__():
    """Called once, before the first event. An exception here aborts the run."""
    print("tracing", {events_repr}, "... Ctrl-C to stop")


def __exit__():
    """Called once on exit (Ctrl-C, SIGTERM, -N, end of the -p processes)."""
    for name, n in sorted(counts.items()):
        print(f"{{name}}: {{n}} events")


def __interval__():
    """Called every -i milliseconds, after what was buffered has been delivered."""
    global intervals
    intervals += 1
    print(f"interval {{intervals}}: {{sum(counts.values())}} events so far")


def __print_stat__(indent: int):
    """Called on SIGUSR2 (kill -USR2 <pid>), after ebpfprof's own statistics."""
    print(" " * indent + f"script: {{sum(counts.values())}} events")


def __lost__(lost_start: int, lost_end: int):
    """Events were lost. With --order: timestamps of the events around the gap, else 0, 0."""
    print(f"lost events between {{lost_start}} and {{lost_end}}")
'''

_HANDLER = '''

def {handler}(event):
    """{title}

    Fields{aliased}:
{fields}
    """
    counts[event._event] += 1
'''

_SAMPLE = '''

def __sample__(event):
    """Any event whose selector has no handler of its own."""
    counts[event._event] += 1
'''


def _field_lines(event: EventSpec) -> str:
    if event.sample is not None:     # a profiler's sample: its perf sample_type members
        fields = event.sample.fields
        width = max((len(f.name) for f in fields), default=4)
        return "\n".join(f"        {f.name:<{width}} : {f.python_type:<5}  # {f.meaning}" for f in fields)
    own = event.format.own_fields
    width = max((len(f.name) for f in event.format.fields), default=4)
    meanings = dict(event.meanings)
    lines = [f"        {f.name:<{width}} : {f.python_type:<5}  # {f.type}"
             + (f": {meanings[f.name]}" if f.name in meanings else "") for f in own]
    lines.append(f"        {'common_*':<{width}} : int    # common_type, common_flags, common_preempt_count, common_pid")
    return "\n".join(lines)


def script_template(events: tuple[str, ...], specs: list[EventSpec],
                    options: list[str] | None = None) -> str:
    """The template text; ``options`` are the other command-line options to repeat in the header."""
    event_arg = ",".join(events)
    # Line breaks would end the comment lines; everything else (spaces in filter strings
    # included) is kept exactly, so the command runs the same selectors.
    event_arg = event_arg.replace("\r", " ").replace("\n", " ")
    command = " ".join(["ebpfprof", "python", "-e", shlex.quote(event_arg), *(options or [])])
    out = [_HEADER.format(command=command, events_comment=event_arg, events_repr=repr(event_arg))]
    if len(out[0].split("\n", 1)[0].encode()) > 255:
        # Linux reads at most 255 bytes of a #! line: a longer one would run something else.
        out[0] = "# (selectors too long for a #! line: run it with the command below)\n" + out[0].split("\n", 1)[1]
    seen: set[str] = set()
    for event in specs:
        if event.handler in seen:   # two selectors, one handler (same alias): write it once
            continue
        seen.add(event.handler)
        out.append(_HANDLER.format(handler=event.handler, title=f"Handler for {event.title}.",
                                   aliased="", fields=_field_lines(event)))
    out.append(_SAMPLE)
    return "".join(out)


def _repeatable_options(config: RunConfig) -> list[str]:
    out = []
    if config.interval_ms:
        out += ["-i", str(config.interval_ms)]
    if config.call_graph:
        out.append("-g")
    if config.order:
        out.append("--order")
    return out


def run_help(config: RunConfig) -> int:
    """``ebpfprof python -e SELECTORS help``: print the template for the run's selectors."""
    def warn(message: str) -> None:       # e.g. a selector given twice: the script would see it twice
        if config.verbose >= 0:
            sys.stderr.write(f"ebpfprof: {message}\n")

    specs = [spec.event for spec in resolve_selectors(config.events, config, warn=warn)]
    sys.stdout.write(script_template(config.events, specs, _repeatable_options(config)))
    return 0
