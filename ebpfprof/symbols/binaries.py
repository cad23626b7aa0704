"""Which file a uprobe's FILE names: a path, a library short name, or a program on PATH.

The way BCC (and so `trace`, bpftrace) finds them:

* a name holding '/' is a path (relative to the working directory);
* ``c``, ``libc``, ``pthread``, ``libc.so.6`` is a library: the one the -p process has mapped,
  else the dynamic linker's cache (``ldconfig -p``) for this machine's architecture;
* else a program on ``PATH`` (``bash``).
"""
from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from functools import lru_cache

__all__ = ["find_binary", "library_candidates"]

# ldconfig -p's tag for this machine's libraries
_LDCONFIG_ARCH = {"x86_64": "x86-64", "aarch64": "AArch64"}


def library_candidates(name: str) -> re.Pattern:
    """A pattern matching the file names of library ``name``: c → libc.so, libc.so.6, ..."""
    base = name if name.startswith("lib") else "lib" + name
    if ".so" in base:
        return re.compile(re.escape(base) + r"$")
    return re.compile(re.escape(base) + r"(-[\d.]+)?\.so(\.\d+)*$")


def _in_maps(pattern: re.Pattern, pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/maps") as maps:
            for line in maps:
                parts = line.split(None, 5)
                if len(parts) == 6:
                    path = parts[5].strip()
                    if path.startswith("/") and pattern.match(os.path.basename(path)):
                        return f"/proc/{pid}/root{path}" if _other_root(pid) else path
    except OSError:
        pass
    return None


def _other_root(pid: int) -> bool:
    try:
        return os.stat(f"/proc/{pid}/root") != os.stat("/")
    except OSError:
        return False


@lru_cache(maxsize=1)
def _ldconfig_cache() -> tuple[tuple[str, str], ...]:
    """(file name, path) of every library of this architecture in the linker's cache."""
    tool = shutil.which("ldconfig") or next((p for p in ("/sbin/ldconfig", "/usr/sbin/ldconfig")
                                             if os.path.exists(p)), None)
    if tool is None:
        return ()
    try:
        out = subprocess.run([tool, "-p"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return ()
    arch = _LDCONFIG_ARCH.get(platform.machine())
    found = []
    for line in out.splitlines():
        m = re.match(r"\s+(\S+) \(([^)]*)\) => (\S+)$", line)
        if m and (arch is None or arch in m.group(2)):
            found.append((m.group(1), m.group(3)))
    return tuple(found)


def _in_ldconfig(pattern: re.Pattern) -> str | None:
    for name, path in _ldconfig_cache():
        if pattern.match(name):
            return path
    return None


def find_binary(text: str, pid: int | None = None) -> str | None:
    """The path of the file ``text`` names, or None. A path is returned as given (absolute)
    whether or not it exists: the caller says what is wrong with it."""
    if "/" in text:
        return os.path.abspath(text)
    pattern = library_candidates(text)
    found = (_in_maps(pattern, pid) if pid else None) or _in_ldconfig(pattern)
    if found:
        return found
    return shutil.which(text)
