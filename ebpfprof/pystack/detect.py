"""Is process PID a CPython we can walk, and where are its interpreter's globals?

``python_target(pid)`` finds the mapped file that defines ``_PyRuntime`` (the executable of a
static build such as Debian's /usr/bin/python3.11, or a ``libpython3.X.so`` of a shared one
such as pyenv's), reads ``Py_Version`` (PY_VERSION_HEX, a const in that file) from the
process's memory, and picks the struct layout: from the target's own ``_Py_DebugOffsets`` on
3.13+, else from layout.LAYOUTS. Anything else (not Python, Python < 3.11, a version without a
table, a free-threaded build, an unreadable process) gives a ``NotPython`` with a one-line
reason: never a guessed layout.

The current thread's ``PyThreadState *`` is CPython's ``PyThread_tss_get(&_PyRuntime.autoTSSkey)``,
i.e. glibc's ``pthread_getspecific(key)``; for keys below 32 that is
``*(fs_base + 0x310 + key * 16 + 8)`` (``struct pthread.specific_1stblock[key].data`` on x86-64
glibc 2.x, checked against PyThreadState_Get() in 3.11.2/3.11.7/3.12.1/3.13.0 here).
``gilstate.tstate_current`` (3.11) is the thread holding the GIL, not the current one.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ebpfprof.pystack.layout import (DebugOffsetsError, PyLayout, debug_offsets_size,
                                     from_debug_offsets, layout_for)
from ebpfprof.pystack.memory import MemoryReadError, ProcessMemory
from ebpfprof.symbols.elf import ElfFile, NotElf

__all__ = ["PyTarget", "NotPython", "TlsRule", "GLIBC_X86_64", "python_target", "version_string", "ns_tid"]


@dataclass(frozen=True)
class TlsRule:
    """Where a pthread key's value lives, from the thread's FS base (x86-64 glibc):
    ``*(fs_base + specific + key * entry_size + data)`` for ``key < max_key``."""

    specific: int = 0x310        # offsetof(struct pthread, specific_1stblock)
    entry_size: int = 16         # sizeof(struct pthread_key_data): {uintptr_t seq; void *data;}
    data: int = 8                # offsetof(struct pthread_key_data, data)
    max_key: int = 32            # PTHREAD_KEY_2NDLEVEL_SIZE: larger keys live in specific[key / 32]

    def value_address(self, fs_base: int, key: int) -> int | None:
        if not 0 <= key < self.max_key:
            return None
        return fs_base + self.specific + key * self.entry_size + self.data


GLIBC_X86_64 = TlsRule()


@dataclass(frozen=True)
class PyTarget:
    """A CPython process: its layout and the absolute addresses of its globals."""

    pid: int
    version: str                 # "3.12.1"
    version_hex: int             # PY_VERSION_HEX read from the process
    layout: PyLayout
    binary: str                  # the file (as mapped) that defines _PyRuntime
    runtime_addr: int            # &_PyRuntime
    tss_key_addr: int            # &_PyRuntime.[gilstate.]autoTSSkey._key (a pthread_key_t, u32)
    tls: TlsRule | None          # None: not glibc, find the thread state by walking the thread list
    none_addr: int               # &_Py_NoneStruct (what 3.13's entry frames run instead of code), 0 if unknown
    memory: ProcessMemory = field(compare=False, repr=False)

    @property
    def interpreters_head_addr(self) -> int:
        return self.runtime_addr + self.layout.runtime_interpreters_head

    def tss_key(self) -> int:
        return self.memory.u32(self.tss_key_addr)


@dataclass(frozen=True)
class NotPython:
    """Why process ``pid`` has no walkable Python stack. False in a boolean context."""

    pid: int
    reason: str

    def __bool__(self) -> bool:
        return False


_RELEASE = {0xA: "a", 0xB: "b", 0xC: "rc"}


def version_string(version_hex: int) -> str:
    """``0x030C01F0`` -> ``"3.12.1"``, ``0x030D00A3`` -> ``"3.13.0a3"``."""
    major, minor, micro = version_hex >> 24, (version_hex >> 16) & 0xFF, (version_hex >> 8) & 0xFF
    level, serial = (version_hex >> 4) & 0xF, version_hex & 0xF
    return f"{major}.{minor}.{micro}" + (f"{_RELEASE[level]}{serial}" if level in _RELEASE else "")


@dataclass(frozen=True)
class _Mapping:
    start: int
    end: int
    offset: int
    inode: int
    path: str


def _file_mappings(pid: int) -> list[_Mapping]:
    out = []
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            parts = line.split(maxsplit=5)
            if len(parts) == 6 and parts[5].startswith("/"):
                start, end = (int(x, 16) for x in parts[0].split("-"))
                out.append(_Mapping(start, end, int(parts[2], 16), int(parts[4]), parts[5].rstrip("\n")))
    return out


_LIBPYTHON = re.compile(r"/libpython3\.\d+[^/]*\.so[^/]*$")


def _candidates(pid: int, mappings: list[_Mapping]) -> list[_Mapping]:
    """The first mapping of the executable, then of any libpython: the files that may define
    _PyRuntime. The executable is found by inode: its path in /proc/PID/exe and maps is as
    this process sees it (a chroot's prefix, or another mount namespace's path)."""
    try:
        exe_inode = os.stat(f"/proc/{pid}/exe").st_ino
    except OSError:
        exe_inode = -1
    firsts: dict[str, _Mapping] = {}
    for m in mappings:
        firsts.setdefault(m.path, m)
    found = [m for m in firsts.values() if m.inode == exe_inode]
    found += [m for m in firsts.values() if _LIBPYTHON.search(m.path) and m not in found]
    return found


_ELF_CACHE: dict[tuple[int, int, int, int], ElfFile] = {}


def _elf(path: str, st: os.stat_result) -> ElfFile:
    """ElfFile(path), cached by the file's identity (not its path: map_files paths are per process)."""
    key = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
    elf = _ELF_CACHE.get(key)
    if elf is None:
        if len(_ELF_CACHE) >= 16:
            _ELF_CACHE.clear()
        elf = _ELF_CACHE[key] = ElfFile(path)
    return elf


def _open_elf(pid: int, m: _Mapping) -> ElfFile:
    """The mapped file itself, wherever its path leads from here: /proc/PID/map_files opens the
    very file mapped (needs CAP_SYS_ADMIN), else the path inside the process's root, else ours;
    each checked against the mapping's inode. elf_file() is not used: it resolves paths with
    realpath(), which takes /proc/PID/root/... back to a path of our own mount namespace."""
    for path in (f"/proc/{pid}/map_files/{m.start:x}-{m.end:x}", f"/proc/{pid}/root{m.path}", m.path):
        try:
            st = os.stat(path)
        except OSError:
            continue
        if st.st_ino == m.inode:
            return _elf(path, st)
    raise OSError(f"cannot open {m.path} of process {pid}")


def _bias(elf, path: str, mappings: list[_Mapping]) -> int | None:
    if not elf.position_independent:
        return 0
    first = elf.first_load_vaddr() & ~0xFFF
    for m in mappings:
        if m.path == path and m.offset == 0:
            return m.start - first
    return None


def _is_musl(mappings: list[_Mapping]) -> bool:
    return any("ld-musl" in m.path or "libc.musl" in m.path for m in mappings)


def python_target(pid: int) -> PyTarget | NotPython:
    """The CPython in process ``pid``, or NotPython(pid, reason).

        >>> python_target(os.getpid())              # doctest: +SKIP
        PyTarget(pid=4242, version='3.11.2', ..., binary='/usr/bin/python3.11', ...)
        >>> python_target(sleep_pid).reason         # doctest: +SKIP
        'process 4243 (/usr/bin/sleep) maps no file defining _PyRuntime: not CPython'
    """
    try:
        mappings = _file_mappings(pid)
    except OSError as e:
        return NotPython(pid, f"cannot read /proc/{pid}/maps: {e.strerror}")
    candidates = _candidates(pid, mappings)
    for mapping in candidates:
        path = mapping.path
        try:
            elf = _open_elf(pid, mapping)
        except (OSError, NotElf):
            continue
        runtime, version = elf.symbol("_PyRuntime"), elf.symbol("Py_Version")
        if runtime is None:
            continue
        if version is None:
            return NotPython(pid, f"{path} defines _PyRuntime but not Py_Version: CPython older than 3.11")
        bias = _bias(elf, path, mappings)
        if bias is None:
            return NotPython(pid, f"cannot find where {path} is mapped in process {pid}")
        none = elf.symbol("_Py_NoneStruct")
        return _target(pid, path, runtime.value + bias, version.value + bias, runtime.size, mappings,
                       none.value + bias if none else 0)
    exe = candidates[0].path if candidates else "?"
    return NotPython(pid, f"process {pid} ({exe}) maps no file defining _PyRuntime: not CPython")


def _target(pid: int, path: str, runtime_addr: int, version_addr: int, runtime_size: int,
            mappings: list[_Mapping], none_addr: int) -> PyTarget | NotPython:
    try:
        memory = ProcessMemory(pid)
    except OSError as e:
        return NotPython(pid, f"cannot open /proc/{pid}/mem: {e.strerror}")
    try:
        version_hex = memory.u64(version_addr)
        version = version_string(version_hex)
        table = layout_for(version_hex)
        if table is None:
            memory.close()
            return NotPython(pid, f"Python {version} ({path}): no layout for this version (3.11-3.13 are known)")
        layout = table
        size = debug_offsets_size(table.version)
        if size:                                       # 3.13+: the process says where things are
            raw = memory.read(runtime_addr, size)
            layout = from_debug_offsets(raw)
            members_version = int.from_bytes(raw[8:16], "little")
            if members_version != version_hex:
                memory.close()
                return NotPython(pid, f"Python {version} ({path}): _Py_DebugOffsets says version "
                                      f"{version_string(members_version)}")
    except DebugOffsetsError as e:
        memory.close()
        return NotPython(pid, f"Python {version} ({path}): {e}")
    except MemoryReadError as e:
        memory.close()
        return NotPython(pid, f"cannot read the interpreter's globals in process {pid}: {e.strerror}")
    if runtime_size and layout.runtime_tss_key + 4 > runtime_size:
        memory.close()
        return NotPython(pid, f"Python {version} ({path}): _PyRuntime is {runtime_size} bytes, "
                              "smaller than its layout says")
    try:
        # Py_tss_t {int _is_initialized; pthread_key_t _key;}: the one offset no debug offsets
        # give on 3.13; a flag other than 0/1 means the table is wrong for this build
        initialized = memory.i32(runtime_addr + layout.runtime_tss_key - 4)
    except MemoryReadError as e:
        memory.close()
        return NotPython(pid, f"cannot read the interpreter's globals in process {pid}: {e.strerror}")
    if initialized not in (0, 1):
        memory.close()
        return NotPython(pid, f"Python {version} ({path}): no Py_tss_t at the autoTSSkey offset "
                              f"{layout.runtime_tss_key - 4} (layout mismatch)")
    return PyTarget(pid=pid, version=version, version_hex=version_hex, layout=layout, binary=path,
                    runtime_addr=runtime_addr, tss_key_addr=runtime_addr + layout.runtime_tss_key,
                    tls=None if _is_musl(mappings) else GLIBC_X86_64, none_addr=none_addr, memory=memory)


def ns_tid(pid: int, tid: int) -> int:
    """Thread ``tid``'s id in its own pid namespace (what CPython stores as native_thread_id)."""
    with open(f"/proc/{pid}/task/{tid}/status") as f:
        for line in f:
            if line.startswith("NSpid:"):
                return int(line.split()[-1])
    return tid
