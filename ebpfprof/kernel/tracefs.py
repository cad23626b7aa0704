"""Where tracefs is, what tracepoints exist, and their formats.

tracefs is normally at /sys/kernel/tracing; older set-ups only have it under
/sys/kernel/debug/tracing. If neither is mounted we mount it (the CLI says so with -v); the
mount is left in place because other tools expect it there too.
"""
from __future__ import annotations

import ctypes
import errno
import fnmatch
import os
from functools import lru_cache

from ebpfprof.errors import KernelError, PermissionProblem, SelectorError, close_matches
from ebpfprof.kernel.event_format import EventFormat, FormatError, parse_format

__all__ = ["tracefs_root", "list_tracepoints", "read_format", "expand_tracepoint"]

_CANDIDATES = ("/sys/kernel/tracing", "/sys/kernel/debug/tracing")


def _mount_tracefs(path: str) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.mount(b"nodev", path.encode(), b"tracefs", 0, None) != 0:
        err = ctypes.get_errno()
        if err == errno.EBUSY:
            return
        if err == errno.EPERM:
            raise PermissionProblem(f"cannot mount tracefs at {path}: {os.strerror(err)}",
                                    hint="run as root, or mount it first: mount -t tracefs nodev /sys/kernel/tracing")
        raise KernelError(f"cannot mount tracefs at {path}: {os.strerror(err)}",
                          hint="is CONFIG_TRACING enabled? try: mount -t tracefs nodev /sys/kernel/tracing")


def _mounted_tracefs() -> list[str]:
    try:
        with open("/proc/self/mounts") as f:
            return [line.split()[1] for line in f if line.split()[2:3] == ["tracefs"]]
    except OSError:
        return []


# True once this process mounted tracefs (the CLI says so with -v).
mounted_by_us = False


@lru_cache(maxsize=1)
def tracefs_root() -> str:
    """The tracefs directory, mounting it at /sys/kernel/tracing if needed."""
    global mounted_by_us
    override = os.environ.get("EBPFPROF_TRACEFS")
    if override:
        return override
    for path in _CANDIDATES:
        if os.path.isdir(os.path.join(path, "events")):
            return path
    mounted = [p for p in _CANDIDATES if p in _mounted_tracefs()]
    if mounted:
        # Mounted, but we may not look inside (tracefs is root-only: drwx------).
        raise PermissionProblem(f"cannot read tracefs at {mounted[0]}",
                                hint="run as root; with capabilities instead, add CAP_DAC_READ_SEARCH "
                                     "to CAP_BPF+CAP_PERFMON")
    if os.path.isdir(_CANDIDATES[0]):
        _mount_tracefs(_CANDIDATES[0])
        if os.path.isdir(os.path.join(_CANDIDATES[0], "events")):
            mounted_by_us = True
            return _CANDIDATES[0]
    raise KernelError("tracefs is not available (no /sys/kernel/tracing/events)",
                      hint="mount it: mount -t tracefs nodev /sys/kernel/tracing")


@lru_cache(maxsize=1)
def list_tracepoints() -> tuple[tuple[str, str], ...]:
    """Every (system, name) that has a format file."""
    events = os.path.join(tracefs_root(), "events")
    out: list[tuple[str, str]] = []
    try:
        systems = sorted(os.listdir(events))
    except PermissionError:
        raise PermissionProblem(f"cannot read {events}", hint="run as root (or with CAP_PERFMON)") from None
    for system in systems:
        sys_dir = os.path.join(events, system)
        if not os.path.isdir(sys_dir):
            continue
        for name in sorted(os.listdir(sys_dir)):
            if os.path.isfile(os.path.join(sys_dir, name, "format")):
                out.append((system, name))
    return tuple(out)


@lru_cache(maxsize=None)
def read_format(system: str, name: str) -> EventFormat:
    """The EventFormat of one tracepoint (cached for the run)."""
    path = os.path.join(tracefs_root(), "events", system, name, "format")
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        raise _unknown_tracepoint(system, name) from None
    except PermissionError:
        raise PermissionProblem(f"cannot read {path}", hint="run as root (or with CAP_PERFMON)") from None
    try:
        return parse_format(text, system)
    except FormatError as e:
        raise KernelError(f"cannot parse {path}: {e}") from None


def _unknown_tracepoint(system: str, name: str) -> SelectorError:
    everything = list_tracepoints()
    full = f"{system}:{name}"
    names = [f"{s}:{n}" for s, n in everything]
    guesses = close_matches(full, names, n=3)
    if not guesses:
        # A right name in the wrong system is a common slip: look by name alone.
        guesses = [f"{s}:{n}" for s, n in everything if n == name][:3]
    if not guesses:
        same_sys = [n for s, n in everything if s == system]
        guesses = [f"{system}:{n}" for n in close_matches(name, same_sys, n=3)]
    hint = ("did you mean " + ", ".join(guesses) + "?") if guesses else \
        f"list them with: ls {tracefs_root()}/events/{system if any(s == system for s, _ in everything) else ''}"
    return SelectorError(f"unknown tracepoint '{full}'", hint=hint)


def expand_tracepoint(system: str, name: str) -> list[tuple[str, str]]:
    """(system, name) pairs matching a possibly wildcarded selector; an error if none match."""
    if not any(c in system + name for c in "*?["):
        read_format(system, name)  # raises the "unknown tracepoint" error with suggestions
        return [(system, name)]
    matches = [(s, n) for s, n in list_tracepoints()
               if fnmatch.fnmatchcase(s, system) and fnmatch.fnmatchcase(n, name)]
    if not matches:
        raise SelectorError(f"no tracepoint matches '{system}:{name}'",
                            hint=f"list them with: ls {tracefs_root()}/events/")
    return matches
