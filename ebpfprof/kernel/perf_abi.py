"""perf_event_open(2) and the bpf(2) calls around it, through ctypes: the attr layout, opening
a tracepoint's perf event, attaching a BPF program to it, and releasing many at once.

Why ebpfprof attaches tracepoint programs itself rather than with BCC's attach_tracepoint:
BCC opens a *sampling* perf event (period 1, PERF_SAMPLE_RAW) and enables it, so a program
that returns 1 (to let other perf users see the event) makes perf_tp_event() prepare a
sample for BCC's event too — measured 2x slower on that CPU. Ours is a *counting* event that
stays *disabled*: it is on no CPU's perf list, so perf_tp_event() has nothing to do for it,
while the program (attached to the trace_event_call, not to the event) runs on every CPU.
"""
from __future__ import annotations

import ctypes
import os
import resource

__all__ = ["PerfEventAttr", "open_tracepoint_event", "open_event", "attach_bpf", "set_bpf",
           "enable", "disable", "set_output", "read_counts", "release_in_background",
           "raise_nofile_limit", "RELEASER_NAME", "Sample", "Flag", "ReadFormat"]

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
_libc.ioctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong]

_NR_PERF_EVENT_OPEN, NR_BPF = {"x86_64": (298, 321), "aarch64": (241, 280)}.get(os.uname().machine, (-1, -1))

PERF_TYPE_HARDWARE = 0
PERF_TYPE_SOFTWARE = 1
PERF_TYPE_TRACEPOINT = 2
PERF_TYPE_BREAKPOINT = 5
PERF_COUNT_HW_CPU_CYCLES = 0
PERF_COUNT_SW_CPU_CLOCK = 0
PERF_COUNT_SW_PAGE_FAULTS = 2
PERF_COUNT_SW_BPF_OUTPUT = 10
HW_BREAKPOINT_R, HW_BREAKPOINT_W, HW_BREAKPOINT_X = 1, 2, 4
PERF_FLAG_FD_CLOEXEC = 1 << 3
PERF_EVENT_IOC_ENABLE = 0x2400               # _IO('$', 0)
PERF_EVENT_IOC_DISABLE = 0x2401              # _IO('$', 1)
PERF_EVENT_IOC_SET_OUTPUT = 0x2405           # _IO('$', 5)
PERF_EVENT_IOC_SET_BPF = 0x40042408          # _IOW('$', 8, __u32)
PERF_SAMPLE_REGS_ABI_64 = 2


class Sample:
    """PERF_SAMPLE_* bits of perf_event_attr.sample_type."""

    IP, TID, TIME, ADDR, READ, CALLCHAIN, ID, CPU, PERIOD, STREAM_ID, RAW = (1 << b for b in range(11))
    BRANCH_STACK, REGS_USER, STACK_USER, WEIGHT, DATA_SRC, IDENTIFIER = (1 << b for b in range(11, 17))
    TRANSACTION, REGS_INTR, PHYS_ADDR, AUX, CGROUP = (1 << b for b in range(17, 22))
    DATA_PAGE_SIZE, CODE_PAGE_SIZE, WEIGHT_STRUCT = (1 << b for b in range(22, 25))


class ReadFormat:
    """PERF_FORMAT_* bits of perf_event_attr.read_format."""

    TOTAL_TIME_ENABLED, TOTAL_TIME_RUNNING, ID, GROUP, LOST = (1 << b for b in range(5))


class Flag:
    """perf_event_attr's bit fields, as bits of its ``flags`` word."""

    DISABLED = 1 << 0
    INHERIT = 1 << 1
    EXCLUDE_USER = 1 << 4
    EXCLUDE_KERNEL = 1 << 5
    EXCLUDE_HV = 1 << 6
    EXCLUDE_IDLE = 1 << 7
    FREQ = 1 << 10
    WATERMARK = 1 << 14
    SAMPLE_ID_ALL = 1 << 18
    EXCLUDE_CALLCHAIN_KERNEL = 1 << 21
    EXCLUDE_CALLCHAIN_USER = 1 << 22
    USE_CLOCKID = 1 << 25


ATTR_DISABLED = Flag.DISABLED
BPF_LINK_CREATE = 28
BPF_PERF_EVENT = 41                          # enum bpf_attach_type


class PerfEventAttr(ctypes.Structure):
    """struct perf_event_attr (include/uapi/linux/perf_event.h), PERF_ATTR_SIZE_VER8."""

    _fields_ = [
        ("type", ctypes.c_uint32),
        ("size", ctypes.c_uint32),
        ("config", ctypes.c_uint64),
        ("sample_period", ctypes.c_uint64),   # union with sample_freq
        ("sample_type", ctypes.c_uint64),
        ("read_format", ctypes.c_uint64),
        ("flags", ctypes.c_uint64),           # disabled, inherit, pinned, ... (bit fields)
        ("wakeup_events", ctypes.c_uint32),   # union with wakeup_watermark
        ("bp_type", ctypes.c_uint32),
        ("config1", ctypes.c_uint64),         # union with bp_addr
        ("config2", ctypes.c_uint64),         # union with bp_len
        ("branch_sample_type", ctypes.c_uint64),
        ("sample_regs_user", ctypes.c_uint64),
        ("sample_stack_user", ctypes.c_uint32),
        ("clockid", ctypes.c_int32),
        ("sample_regs_intr", ctypes.c_uint64),
        ("aux_watermark", ctypes.c_uint32),
        ("sample_max_stack", ctypes.c_uint16),
        ("reserved_2", ctypes.c_uint16),
        ("aux_sample_size", ctypes.c_uint32),
        ("aux_action", ctypes.c_uint32),
        ("sig_data", ctypes.c_uint64),
        ("config3", ctypes.c_uint64),
    ]


assert ctypes.sizeof(PerfEventAttr) == 136


class _LinkCreateAttr(ctypes.Structure):
    """bpf(2) attr of BPF_LINK_CREATE with the perf_event part (bpf_cookie)."""

    _fields_ = [("prog_fd", ctypes.c_uint32), ("target_fd", ctypes.c_uint32),
                ("attach_type", ctypes.c_uint32), ("flags", ctypes.c_uint32),
                ("bpf_cookie", ctypes.c_uint64), ("pad", ctypes.c_uint64 * 4)]


def _oserror(what: str) -> OSError:
    e = ctypes.get_errno()
    return OSError(e, f"{what}: {os.strerror(e)}")


def open_tracepoint_event(tracepoint_id: int, *, cpu: int = 0) -> int:
    """A counting perf event on the tracepoint, on one CPU, disabled (and never enabled)."""
    attr = PerfEventAttr(type=PERF_TYPE_TRACEPOINT, size=ctypes.sizeof(PerfEventAttr),
                         config=tracepoint_id, flags=ATTR_DISABLED)
    fd = _libc.syscall(_NR_PERF_EVENT_OPEN, ctypes.byref(attr), -1, cpu, -1, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        raise _oserror("perf_event_open")
    return fd


def open_event(attr: PerfEventAttr, pid: int, cpu: int, group_fd: int = -1) -> int:
    """perf_event_open(attr, pid, cpu): the new fd (close-on-exec), or OSError."""
    attr.size = ctypes.sizeof(PerfEventAttr)
    fd = _libc.syscall(_NR_PERF_EVENT_OPEN, ctypes.byref(attr), pid, cpu, group_fd, PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        raise _oserror("perf_event_open")
    return fd


def _ioctl(fd: int, request: int, arg: int, what: str) -> None:
    if _libc.ioctl(fd, request, arg) != 0:
        raise _oserror(what)


def enable(fd: int) -> None:
    """Start counting and sampling (the event and the events inherited from it)."""
    _ioctl(fd, PERF_EVENT_IOC_ENABLE, 0, "PERF_EVENT_IOC_ENABLE")


def disable(fd: int) -> None:
    """Stop it: once this returns, nothing more is written to its ring."""
    _ioctl(fd, PERF_EVENT_IOC_DISABLE, 0, "PERF_EVENT_IOC_DISABLE")


def set_output(fd: int, ring_fd: int) -> None:
    """Send fd's samples to ring_fd's ring (same CPU; the kernel checks)."""
    _ioctl(fd, PERF_EVENT_IOC_SET_OUTPUT, ring_fd, "PERF_EVENT_IOC_SET_OUTPUT")


def set_bpf(perf_fd: int, prog_fd: int) -> None:
    """Run a BPF_PROG_TYPE_PERF_EVENT program on each of the event's samples (0: dropped)."""
    _ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog_fd, "PERF_EVENT_IOC_SET_BPF")


def read_counts(fd: int, read_format: int) -> dict[str, int]:
    """read(2) of a non-group event: {'value', ['time_enabled', 'time_running', 'id', 'lost']}."""
    names = ["value"] + [name for bit, name in ((ReadFormat.TOTAL_TIME_ENABLED, "time_enabled"),
                                                (ReadFormat.TOTAL_TIME_RUNNING, "time_running"),
                                                (ReadFormat.ID, "id"), (ReadFormat.LOST, "lost"))
                         if read_format & bit]
    data = os.read(fd, 8 * len(names))
    return {name: int.from_bytes(data[8 * i:8 * i + 8], "little") for i, name in enumerate(names)
            if len(data) >= 8 * i + 8}


def attach_bpf(prog_fd: int, perf_fd: int, cookie: int | None = None) -> int | None:
    """Attach the program to the perf event: through a bpf_link (Linux 5.15+), with
    ``cookie`` for bpf_get_attach_cookie(), else (no cookie asked for) with
    PERF_EVENT_IOC_SET_BPF. Returns the link fd, or None for the ioctl way."""
    attr = _LinkCreateAttr(prog_fd=prog_fd, target_fd=perf_fd, attach_type=BPF_PERF_EVENT,
                           bpf_cookie=cookie or 0)
    fd = _libc.syscall(NR_BPF, BPF_LINK_CREATE, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd >= 0:
        return fd
    if cookie is not None:
        raise _oserror("BPF_LINK_CREATE")
    if _libc.ioctl(perf_fd, PERF_EVENT_IOC_SET_BPF, prog_fd) != 0:
        raise _oserror("PERF_EVENT_IOC_SET_BPF")
    return None


def release_in_background(links: list[int], perf_fds: list[int]) -> int:
    """Close bpf_links and tracepoint perf events without waiting for them.

    Closing a link waits for an RCU-tasks-trace grace period (perf_event_detach_bpf_prog),
    and releasing the last perf event of a tracepoint for more (perf_trace_event_unreg →
    tracepoint_synchronize_unregister, under the kernel's event_mutex, so one at a time):
    ~75 ms a tracepoint here. A child process inherits the fds and releases them; it first
    closes every other fd it inherited (so pipes see EOF and no other BPF object is kept
    alive), then the links from several threads (their grace periods overlap: every
    function is detached within a second or two), then the perf events, and exits. The
    parent's own closes only drop a reference. Returns the child's pid.
    """
    pid = os.fork()
    if pid == 0:
        try:
            keep = set(links) | set(perf_fds)
            os.setsid()
            _libc.prctl(15, RELEASER_NAME.encode(), 0, 0, 0)      # PR_SET_NAME: seen in ps
            for name in os.listdir("/proc/self/fd"):
                fd = int(name)
                if fd not in keep:
                    try:
                        os.close(fd)
                    except OSError:
                        pass
            _close_in_threads(links, _RELEASE_THREADS)
            _close_in_threads(perf_fds, _RELEASE_THREADS)
        finally:
            os._exit(0)
    for fd in links + perf_fds:
        os.close(fd)
    return pid


_RELEASE_THREADS = 16
RELEASER_NAME = "ebpfprof-detach"      # the child's comm (pgrep -x ebpfprof-detach)


def _close_in_threads(fds: list[int], nthreads: int) -> None:
    import threading

    def close_every(k: int) -> None:
        for fd in fds[k::nthreads]:
            try:
                os.close(fd)
            except OSError:
                pass
    threads = [threading.Thread(target=close_every, args=(k,)) for k in range(min(nthreads, len(fds)))]
    for th in threads:
        th.start()
    for th in threads:
        th.join()


def raise_nofile_limit(total: int) -> int:
    """Raise the soft RLIMIT_NOFILE to the hard one when ``total`` open fds would not fit
    (``ulimit -n 1024`` is common; ``syscalls:*`` needs ~2,200). Returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if total > soft and hard != soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, total)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    return soft


def open_probe_event(pmu_type: int, *, retprobe_bit: int | None, target: str, offset: int,
                     pid: int = -1, cpu: int = 0) -> int:
    """A uprobe or kprobe made by the kernel's probe PMU (perf_event_open(2): no tracefs
    *_events entry, gone when the fd closes, even if ebpfprof is killed). ``target`` is the
    file (uprobe, ``offset`` into it) or kernel function (kprobe, ``offset`` into it);
    ``retprobe_bit`` is the PMU's format/retprobe bit of ``config`` for a return probe.
    Disabled, counting: attach a BPF program to it. ``pid`` -1 (every process) needs a CPU;
    a pid is probed in that process alone (the kernel installs the breakpoint in its memory)."""
    name = ctypes.create_string_buffer(os.fsencode(target))
    attr = PerfEventAttr(type=pmu_type, config=(1 << retprobe_bit) if retprobe_bit is not None else 0,
                         config1=ctypes.addressof(name), config2=offset, flags=ATTR_DISABLED,
                         sample_period=1)
    return open_event(attr, pid, cpu if pid == -1 else -1)
