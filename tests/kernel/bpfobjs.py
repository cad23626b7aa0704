"""The kernel's loaded BPF programs, by name (bpf(2) via ctypes), for leak checks."""
from __future__ import annotations

import ctypes
import os

_SYS_BPF = {"x86_64": 321, "aarch64": 280}[os.uname().machine]
_PROG_GET_NEXT_ID = 11
_PROG_GET_FD_BY_ID = 13
_OBJ_GET_INFO_BY_FD = 15

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _bpf(cmd: int, attr: bytearray) -> int:
    buf = (ctypes.c_char * len(attr)).from_buffer(attr)
    return _libc.syscall(_SYS_BPF, cmd, buf, len(attr))


def loaded_program_names() -> list[str]:
    """Names of every BPF program loaded in the kernel (truncated to 15 chars by the kernel)."""
    names = []
    prog_id = 0
    while True:
        attr = bytearray(16)
        attr[0:4] = prog_id.to_bytes(4, "little")
        if _bpf(_PROG_GET_NEXT_ID, attr) != 0:
            break
        prog_id = int.from_bytes(attr[4:8], "little")
        attr = bytearray(16)
        attr[0:4] = prog_id.to_bytes(4, "little")
        fd = _bpf(_PROG_GET_FD_BY_ID, attr)
        if fd < 0:
            continue
        try:
            info = ctypes.create_string_buffer(256)
            attr = bytearray(16)
            attr[0:4] = fd.to_bytes(4, "little")
            attr[4:8] = (256).to_bytes(4, "little")
            attr[8:16] = ctypes.addressof(info).to_bytes(8, "little")
            if _bpf(_OBJ_GET_INFO_BY_FD, attr) == 0:
                names.append(info.raw[64:80].split(b"\0", 1)[0].decode())
        finally:
            os.close(fd)
    return names


def ebpfprof_programs() -> list[str]:
    """Our programs: generated functions are named ep_sel<N>_<sys>__<name>."""
    return [n for n in loaded_program_names() if n.startswith("ep_sel")]


def loaded_program_ids() -> set[int]:
    """Ids of every BPF program loaded in the kernel now."""
    ids = set()
    prog_id = 0
    while True:
        attr = bytearray(16)
        attr[0:4] = prog_id.to_bytes(4, "little")
        if _bpf(_PROG_GET_NEXT_ID, attr) != 0:
            return ids
        prog_id = int.from_bytes(attr[4:8], "little")
        ids.add(prog_id)


def program_ids_of(pid: int | str = "self") -> set[int]:
    """Ids of the BPF programs a process holds open (from /proc/PID/fdinfo)."""
    ids = set()
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            if os.readlink(f"{fd_dir}/{fd}") != "anon_inode:bpf-prog":
                continue
            with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                for line in f:
                    if line.startswith("prog_id:"):
                        ids.add(int(line.split()[1]))
        except OSError:
            continue
    return ids


def kernel_fds_of(pid: int | str = "self") -> list[str]:
    """The process's fds that are BPF objects or perf events (what a run must release)."""
    out = []
    fd_dir = f"/proc/{pid}/fd"
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(f"{fd_dir}/{fd}")
        except OSError:
            continue
        if target.startswith(("anon_inode:bpf", "anon_inode:[perf_event]", "anon_inode:perf_event")):
            out.append(target)
    return sorted(out)
