"""``ebpfprof list [-v] [PATTERN...]``: which events exist, named as ``-e`` takes them.

A PATTERN is one of:

* ``SYS:NAME`` with ``* ? [..]`` wildcards, as in ``-e``: tracepoints (``sched:*wake*``);
* a word without ':': profilers (``profile``) and tracepoints whose system or name it matches
  (``sched``, ``*openat``);
* ``uprobe:FILE:FUNC`` (any uprobe form of ``-e``; ``uretprobe:`` too), FUNC with wildcards:
  the functions of that binary or library a uprobe can take (``uprobe:c:mall*``);
* ``kprobe:FUNC``: kernel functions, where the kernel has kprobes.

No PATTERN lists every tracepoint and profiler. ``-v`` adds each event's fields with their
Python and C types (tracefs formats; a probe's registers; a profiler's sample members).
Nothing matching a PATTERN is an error (exit 1) with the closest names as a hint. Formats are
read only with ``-v``: the names come from tracefs's directories.
"""
from __future__ import annotations

import fnmatch
import os
import sys
from dataclasses import dataclass
from typing import Callable

from ebpfprof.errors import EbpfprofError, KernelError, SelectorError, close_matches
from ebpfprof.kernel import tracefs
from ebpfprof.lang.selector.ast import PROBE_KINDS, ProbeSelector

__all__ = ["run_list", "find_events", "Listing", "FieldRow"]

_WILDCARDS = "*?["


@dataclass(frozen=True)
class FieldRow:
    name: str
    python_type: str
    c_type: str
    note: str = ""


@dataclass(frozen=True)
class Listing:
    """One event as ``list`` shows it: its ``-e`` name; with -v, ``details()`` (lines) and ``fields()``."""

    name: str
    fields: Callable[[], list[FieldRow]]
    details: Callable[[], list[str]] = lambda: []


class NoMatch(EbpfprofError):
    """A PATTERN that names no event (exit 1)."""


def _matches(pattern: str, text: str) -> bool:
    return fnmatch.fnmatchcase(text, pattern) if any(c in pattern for c in _WILDCARDS) else text == pattern


# -- tracepoints -------------------------------------------------------------------------------
def _tracepoint_fields(system: str, name: str) -> list[FieldRow]:
    fmt = tracefs.read_format(system, name)
    return [FieldRow(f.name, f.python_type, f.type) for f in fmt.own_fields]


def _tracepoint(system: str, name: str) -> Listing:
    return Listing(f"{system}:{name}", lambda: _tracepoint_fields(system, name))


def _tracepoints(pattern: str) -> list[Listing]:
    system, _, name = pattern.partition(":")
    return [_tracepoint(s, n) for s, n in tracefs.list_tracepoints()
            if _matches(system, s) and _matches(name, n)]


def _tracepoint_guesses(pattern: str) -> list[str]:
    everything = tracefs.list_tracepoints()
    system, _, name = pattern.partition(":")
    systems = sorted({s for s, _ in everything})
    # a system close to the one given, where the name then matches something
    system_guesses = ([] if any(_matches(system, s) for s in systems) else
                      [f"{g}:{name}" for g in close_matches(system, systems)
                       if any(s == g and _matches(name, n) for s, n in everything)])
    if system_guesses and any(c in name for c in _WILDCARDS):
        return system_guesses              # 'shed:*': the system is the slip, keep the rest
    guesses = close_matches(pattern, [f"{s}:{n}" for s, n in everything])
    if guesses or system_guesses:
        return guesses or system_guesses
    # a right name in the wrong system
    return [f"{s}:{n}" for s, n in everything if _matches(name, n)][:3]


# -- profilers ---------------------------------------------------------------------------------
def _profiler_fields(name: str) -> list[FieldRow]:
    from ebpfprof.options import RunConfig
    from ebpfprof.resolve import resolve_selectors

    try:
        spec = resolve_selectors((name,), RunConfig(events=(name,)))[0]
    except EbpfprofError:         # needs options to be a selector (breakpoint's ADDR)
        return []
    return [FieldRow(f.name, f.python_type, "", f.meaning) for f in spec.event.sample.fields]


def _profiler(name: str) -> Listing:
    from ebpfprof.profilers import PROFILERS
    from ebpfprof.profilers.argv import options_help

    module = PROFILERS[name]
    return Listing(name, lambda: _profiler_fields(name),
                   lambda: [module.SUMMARY, f"options: {options_help(module.OPTIONS)}, --filter EXPR"])


def _profilers(pattern: str) -> list[Listing]:
    from ebpfprof.profilers import PROFILERS

    return [_profiler(name) for name in PROFILERS if _matches(pattern, name)]


# -- probes ------------------------------------------------------------------------------------
def _probe_fields(kind: str, function: str) -> list[FieldRow]:
    from ebpfprof.resolve.probe_format import probe_format, probe_registers

    regs = probe_registers()
    if regs is None:
        return []
    fmt, plans = probe_format(kind, function, regs)
    meaning = {p.name: p.meaning for p in plans}
    return [FieldRow(f.name, f.python_type, f.type, meaning.get(f.name, "")) for f in fmt.own_fields]


def _uprobe_functions(sel: ProbeSelector) -> tuple[str, list[str]]:
    """The binary a uprobe pattern names, and its functions a uprobe can take (sorted)."""
    from ebpfprof.symbols.binaries import find_binary
    from ebpfprof.symbols.elf import STT_GNU_IFUNC, NotElf, elf_file

    path = find_binary(sel.file)
    if path is None or not os.path.isfile(path):
        raise SelectorError(f"{sel.text}: no file '{sel.file}': not a path, a library in the linker's "
                            "cache, or a program on PATH", hint='give the path: uprobe:"/path/to/binary":FUNC')
    try:
        elf = elf_file(path)
    except NotElf:
        raise SelectorError(f"{sel.text}: {path} is not an ELF binary (a script?)") from None
    except OSError as e:
        raise SelectorError(f"{sel.text}: cannot read {path}: {e.strerror}") from None
    # IFUNCs are refused by uprobes (their address is only the chooser): not listed
    names = sorted(s.name for s in elf.symbols.values() if s.is_function and s.type != STT_GNU_IFUNC)
    return path, names


def _probes(sel: ProbeSelector) -> tuple[list[Listing], list[str]]:
    """(the listings, the names searched) of a probe pattern."""
    if sel.kind.startswith("u"):
        path, names = _uprobe_functions(sel)
        prefix = f"{sel.kind}:{path}:"
    else:
        from ebpfprof.kernel.features import kprobes_supported

        reason = kprobes_supported()
        if reason:
            raise KernelError(f"{sel.text}: {reason}",
                              hint="list tracepoints instead: ebpfprof list 'syscalls:*'")
        names = _kernel_functions()
        prefix = f"{sel.kind}:"
    pattern = sel.function or ""
    found = [Listing(prefix + n, (lambda n=n: _probe_fields(sel.kind, n))) for n in names if _matches(pattern, n)]
    return found, names


def _kernel_functions() -> list[str]:
    path = os.path.join(tracefs.tracefs_root(), "available_filter_functions")
    try:
        with open(path) as f:
            return sorted({line.split()[0] for line in f if line.strip()})
    except OSError as e:
        raise KernelError(f"cannot read {path}: {e.strerror}") from None


# -- one pattern -------------------------------------------------------------------------------
def _probe_selector(pattern: str) -> ProbeSelector | None:
    kind = pattern.split(":", 1)[0]
    if kind not in PROBE_KINDS:
        return None
    from ebpfprof.lang.selector.parser import parse_selectors

    selectors = parse_selectors(pattern)
    if len(selectors) != 1 or selectors[0].filter or selectors[0].attrs:
        raise SelectorError(f"list takes one probe pattern without a filter: {pattern!r}",
                            hint="e.g. ebpfprof list 'uprobe:c:mall*'")
    return selectors[0]


def find_events(pattern: str) -> list[Listing]:
    """The events one PATTERN names, in tracefs order (profilers first); NoMatch if none."""
    sel = _probe_selector(pattern)
    if sel is not None:
        found, searched = _probes(sel)
        if not found:
            guesses = close_matches(sel.function or "", searched)
            raise _no_match(pattern, [f"{sel.kind}:{sel.file + ':' if sel.file else ''}{g}" for g in guesses])
        return found
    if ":" in pattern:
        found = _tracepoints(pattern)
        if not found:
            raise _no_match(pattern, _tracepoint_guesses(pattern))
        return found
    found = _profilers(pattern)
    found += [_tracepoint(s, n) for s, n in tracefs.list_tracepoints()
              if _matches(pattern, s) or _matches(pattern, n)]
    if not found:
        from ebpfprof.profilers import PROFILERS

        everything = tracefs.list_tracepoints()
        words = list(PROFILERS) + sorted({s for s, _ in everything}) + [n for _, n in everything]
        raise _no_match(pattern, close_matches(pattern, words))
    return found


def _no_match(pattern: str, guesses: list[str]) -> NoMatch:
    hint = (f"did you mean {', '.join(guesses)}?" if guesses else
            "ebpfprof list shows every tracepoint and profiler; ebpfprof list 'SYS:*' one system's")
    return NoMatch(f"no event matches '{pattern}'", hint=hint)


# -- output ------------------------------------------------------------------------------------
def _verbose_lines(listing: Listing) -> list[str]:
    lines = [f"    {line}" for line in listing.details()]
    rows = listing.fields()
    if not rows:
        return lines
    name_w = max(len(r.name) for r in rows)
    c_w = max(len(r.c_type) for r in rows)
    for r in rows:
        text = f"    {r.name:<{name_w}}  {r.python_type:<5}  {r.c_type:<{c_w}}"
        if r.note:
            text += f"  # {r.note}"
        lines.append(text.rstrip())
    return lines


def run_list(patterns: tuple[str, ...], verbose: bool = False) -> int:
    """`ebpfprof list`: print the events of every PATTERN (all with none); returns 0."""
    listings: list[Listing] = []
    seen: set[str] = set()
    for pattern in patterns or ("*",):
        for listing in find_events(pattern):
            if listing.name not in seen:
                seen.add(listing.name)
                listings.append(listing)
    out = []
    for listing in listings:
        out.append(listing.name)
        if verbose:
            out.extend(_verbose_lines(listing))
    sys.stdout.write("\n".join(out) + "\n")
    return 0
