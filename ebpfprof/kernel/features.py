"""What this kernel and machine can do, as actionable answers.

Each check either returns quietly or raises an EbpfprofError whose message says what is
missing and whose hint says how to get it. Kernel differences are detected by looking at what
is there (files, capabilities), never by parsing version numbers.
"""
from __future__ import annotations

import glob
import os
import platform
from functools import lru_cache

from ebpfprof.errors import MissingDependency, PermissionProblem

__all__ = ["require_privileges", "kernel_headers", "kprobes_supported", "bpf_ringbuf_supported", "KernelHeaders"]

CAP_SYS_ADMIN = 21
CAP_PERFMON = 38
CAP_BPF = 39


def _effective_caps() -> int:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("CapEff:"):
                    return int(line.split()[1], 16)
    except OSError:
        pass
    return 0


def require_privileges() -> None:
    """Root, or CAP_BPF + CAP_PERFMON (CAP_SYS_ADMIN covers both on older kernels)."""
    if os.environ.get("EBPFPROF_ASSUME_UNPRIVILEGED"):
        caps = 0
    else:
        caps = _effective_caps()
    if caps & (1 << CAP_SYS_ADMIN):
        return
    if caps & (1 << CAP_BPF) and caps & (1 << CAP_PERFMON):
        return
    raise PermissionProblem(
        "loading BPF programs needs root or CAP_BPF+CAP_PERFMON",
        hint="run with sudo (or give the process CAP_BPF, CAP_PERFMON and CAP_DAC_READ_SEARCH, "
             "e.g. with setpriv or a systemd unit's AmbientCapabilities)")


class KernelHeaders:
    """Where BCC finds kernel headers, and whether they are the running kernel's own."""

    def __init__(self, path: str, exact: bool) -> None:
        self.path = path
        self.exact = exact


@lru_cache(maxsize=1)
def kernel_headers() -> KernelHeaders:
    """The headers BCC will use: the running kernel's, else the distribution's generic ones.

    Tracepoint layouts come from tracefs at run time and our programs never read kernel structs
    through headers, so generic headers are safe for what we generate.
    """
    env = os.environ.get("BCC_KERNEL_SOURCE")
    if env and os.path.isdir(env):
        return KernelHeaders(env, exact=False)
    release = platform.release()
    for sub in ("build", "source"):
        path = f"/lib/modules/{release}/{sub}"
        if os.path.isdir(os.path.join(path, "include")) or os.path.isdir(os.path.join(path, "arch")):
            real = os.path.realpath(path)
            # A symlink to another version's headers (what `make run` sets up here) is generic.
            exact = release in os.path.basename(real) or real.startswith(f"/lib/modules/{release}")
            return KernelHeaders(path, exact=exact)
    generic = sorted(g for g in glob.glob("/usr/src/linux-headers-*")
                     if not g.endswith("-common") and os.path.isdir(os.path.join(g, "include")))
    hint = "install them: apt-get install linux-headers-amd64 (or linux-headers-$(uname -r) where it exists)"
    if generic:
        common = generic[-1].rsplit("-", 1)[0] + "-common"
        hint = (f"BCC looks in /lib/modules/{release}/build; link the generic headers there: "
                f"mkdir -p /lib/modules/{release} && ln -s {generic[-1]} /lib/modules/{release}/build"
                + (f" && ln -s {common} /lib/modules/{release}/source" if os.path.isdir(common) else "")
                + "  (`make setup` does this)")
    raise MissingDependency(f"no kernel headers for BCC in /lib/modules/{release}/build", hint=hint)


def kprobes_supported() -> str | None:
    """None if kprobes work here, else the reason they do not."""
    from ebpfprof.kernel.tracefs import tracefs_root

    root = tracefs_root()
    if not os.path.exists(os.path.join(root, "kprobe_events")):
        return "this kernel has no kprobes (CONFIG_KPROBES is not set: no kprobe_events in tracefs)"
    return None


_BPF_MAP_CREATE = 0
_BPF_PROG_LOAD = 5
_BPF_PROG_TYPE_TRACING = 26
_BPF_TRACE_FENTRY = 24


@lru_cache(maxsize=8)
def fentry_refused(function: str) -> str | None:
    """None if the kernel loads an fentry program on ``function`` (BTF trampolines), else why
    not. Found by loading the smallest one (r0 = 0; exit) and closing it."""
    import ctypes
    import errno

    from ebpfprof.kernel.btf import BtfError, function_id

    from ebpfprof.kernel.perf_abi import NR_BPF as nr_bpf

    if nr_bpf < 0:
        return f"ebpfprof cannot load BPF programs itself on {platform.machine()}"
    try:
        btf_id = function_id(function)
    except BtfError as e:
        return f"fentry needs the kernel's BTF: {e}"
    if btf_id is None:
        return f"{function} is not a function of the kernel's BTF"
    insns = (ctypes.c_uint64 * 2)(0xB7, 0x95)       # BPF_MOV64_IMM(r0, 0); BPF_EXIT
    license = ctypes.c_char_p(b"GPL")
    attr = (ctypes.c_uint8 * 144)()
    fields = {0: (_BPF_PROG_TYPE_TRACING, 4), 4: (2, 4), 8: (ctypes.addressof(insns), 8),
              16: (ctypes.cast(license, ctypes.c_void_p).value, 8),
              68: (_BPF_TRACE_FENTRY, 4), 108: (btf_id, 4)}  # union bpf_attr, BPF_PROG_LOAD part
    for off, (value, size) in fields.items():
        ctypes.memmove(ctypes.addressof(attr) + off, value.to_bytes(size, "little"), size)
    libc = ctypes.CDLL(None, use_errno=True)
    fd = libc.syscall(nr_bpf, _BPF_PROG_LOAD, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd >= 0:
        os.close(fd)
        return None
    err = ctypes.get_errno()
    return f"fentry on {function} is refused too (loading it: {errno.errorcode.get(err, err)})"
_BPF_MAP_TYPE_RINGBUF = 27


@lru_cache(maxsize=1)
def bpf_ringbuf_supported() -> bool:
    """Whether this kernel has BPF ring buffers (Linux 5.8): found by creating a one-page
    ring buffer map and closing it. Without one, BPF sources write to a perf buffer."""
    import ctypes

    from ebpfprof.kernel.perf_abi import NR_BPF as nr_bpf

    if nr_bpf < 0:
        return True            # no way to ask: let BCC say what it says
    libc = ctypes.CDLL(None, use_errno=True)
    # union bpf_attr for BPF_MAP_CREATE: map_type, key_size, value_size, max_entries, ...
    attr = (ctypes.c_uint32 * 32)(_BPF_MAP_TYPE_RINGBUF, 0, 0, os.sysconf("SC_PAGE_SIZE"))
    fd = libc.syscall(nr_bpf, _BPF_MAP_CREATE, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        return False
    os.close(fd)
    return True


@lru_cache(maxsize=1)
def cpu_cycles_event() -> str | None:
    """None where no hardware PMU counts cycles (this VM), else "cycles". Found by opening a
    disabled cycles event on this process and closing it: the kernel answers ENOENT without a
    PMU, EOPNOTSUPP where the PMU cannot sample."""
    from ebpfprof.kernel import perf_abi

    attr = perf_abi.PerfEventAttr(type=perf_abi.PERF_TYPE_HARDWARE, config=perf_abi.PERF_COUNT_HW_CPU_CYCLES,
                                  sample_period=1_000_000, sample_type=perf_abi.Sample.IP,
                                  flags=perf_abi.Flag.DISABLED)
    try:
        fd = perf_abi.open_event(attr, 0, -1)
    except OSError:
        return None
    os.close(fd)
    return "cycles"


def max_sample_rate() -> int | None:
    """kernel.perf_event_max_sample_rate: the most samples per second one event may take."""
    try:
        with open("/proc/sys/kernel/perf_event_max_sample_rate") as f:
            return int(f.read())
    except (OSError, ValueError):
        return None


@lru_cache(maxsize=2)
def probe_pmu(kind: str) -> tuple[int, int | None]:
    """(perf type, retprobe bit of config) of the kernel's ``uprobe`` or ``kprobe`` PMU;
    KernelError naming what is missing if this kernel has none."""
    from ebpfprof.errors import KernelError

    base = f"/sys/bus/event_source/devices/{kind}"
    try:
        with open(f"{base}/type") as f:
            pmu_type = int(f.read())
    except (OSError, ValueError):
        if kind == "kprobe" and kprobes_supported():
            raise KernelError(kprobes_supported(), hint="use a tracepoint instead (ls /sys/kernel/tracing/events), "
                              "or a kernel built with CONFIG_KPROBES=y") from None
        raise KernelError(f"this kernel has no {kind} PMU ({base} is missing: Linux 4.17+ with "
                          f"CONFIG_{kind.upper()}_EVENTS)") from None
    bit = None
    try:
        with open(f"{base}/format/retprobe") as f:
            text = f.read().strip()          # "config:0"
        if text.startswith("config:"):
            bit = int(text.split(":")[1].split("-")[0])
    except (OSError, ValueError):
        pass
    return pmu_type, bit


def task_fsbase_offset() -> int:
    """task_struct.thread.fsbase in this kernel's BTF: where a thread's TLS pointer is (the
    Python stack walk starts there). KernelError without BTF."""
    from ebpfprof.errors import KernelError
    from ebpfprof.kernel.btf import BtfError, struct_offsets

    try:
        return struct_offsets("task_struct")["thread"] + struct_offsets("thread_struct")["fsbase"]
    except (BtfError, KeyError) as e:
        raise KernelError(f"Python stacks need task_struct.thread.fsbase from the kernel's BTF: {e}",
                          hint="x86-64 kernels with CONFIG_DEBUG_INFO_BTF=y have it") from None
