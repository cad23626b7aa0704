"""The BPF source: every BPF selector of a run (tracepoints, probes) as one program.

The run's BPF selectors become one generated C program (``codegen.program``) that BCC compiles,
one function per selector, all writing to one BPF ring buffer, or with ``--perf-buffer`` (or
on a kernel without BPF ring buffers) to per-CPU perf rings (``sources.perf_buffer``).
Functions are attached with the run's gate closed (``bpf/prelude.h``), so nothing is recorded
until ``start()``.
"""
from __future__ import annotations

import ctypes
import errno
import os
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Iterator

from ebpfprof.bcc_loader import headers_warning, import_bcc
from ebpfprof.codegen.program import CommTracker, GeneratedProgram, TaskFilter, generate_program
from ebpfprof.errors import EbpfprofError, KernelError, UsageError
from ebpfprof.kernel import tracefs
from ebpfprof.kernel.features import task_fsbase_offset
from ebpfprof.options import RunConfig, ring_bytes
from ebpfprof.kernel import perf_abi
from ebpfprof.sources.base import Source
from ebpfprof.sources.perf_buffer import PerfBuffer

__all__ = ["BpfSource", "LoadedProgram", "perf_buffer_reason", "ring_size"]


@contextmanager
def _captured_stderr() -> Iterator[list[str]]:
    """Capture what libbcc and clang write to fd 2 (they bypass sys.stderr)."""
    out: list[str] = []
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield out
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            out.append(tmp.read().decode(errors="replace"))


def _save_log(kind: str, text: str, program: str) -> str:
    fd, path = tempfile.mkstemp(prefix=f"ebpfprof-{kind}-", suffix=".log")
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.write("\n\n/* ---- generated program ---- */\n")
        f.write(program)
    return path


def _last_meaningful_line(log: str) -> str:
    for line in reversed(log.strip().splitlines()):
        line = line.strip()
        if line and not line.startswith(("processed ", "verification time", "stack depth", "Traceback",
                                          "File ", "raise ", "^", "fn = ", "self.")):
            return line
    return "(no message)"


_SYS_BPF = perf_abi.NR_BPF
_BPF_OBJ_GET_INFO_BY_FD = 15
_RECURSION_MISSES_OFFSET = 208      # struct bpf_prog_info.recursion_misses (uapi, stable)
_PROG_INFO_SIZE = 224


def _prog_recursion_misses(fd: int) -> int:
    if _SYS_BPF < 0:
        return 0
    libc = ctypes.CDLL(None, use_errno=True)
    info = ctypes.create_string_buffer(_PROG_INFO_SIZE)
    attr = ctypes.create_string_buffer(16)
    ctypes.memmove(attr, fd.to_bytes(4, "little") + _PROG_INFO_SIZE.to_bytes(4, "little")
                   + ctypes.addressof(info).to_bytes(8, "little"), 16)
    if libc.syscall(_SYS_BPF, _BPF_OBJ_GET_INFO_BY_FD, attr, 16) != 0:
        return 0
    # The kernel writes back how much of the struct it knows; older ones stop before the field.
    known = int.from_bytes(attr.raw[4:8], "little")
    if known < _RECURSION_MISSES_OFFSET + 8:
        return 0
    return int.from_bytes(info.raw[_RECURSION_MISSES_OFFSET:_RECURSION_MISSES_OFFSET + 8], "little")


class LoadedProgram:
    """A generated program: compiled (maps created) by the constructor, attached by attach().

    ``close()`` detaches and releases everything.
    """

    def __init__(self, generated: GeneratedProgram, *, debug: bool = False) -> None:
        self.generated = generated
        self._bpf = None
        self._perf_fds: list[int] = []      # one counting, disabled perf event per function
        self._link_fds: list[int] = []      # the bpf_links attaching the functions to them
        bcc = import_bcc()
        try:
            self._bpf = bcc.BPF(text=generated.text.encode(), debug=0x20 if debug else 0)
        except Exception as e:
            path = _save_log("compile", str(e), generated.text)
            # Headers made for another kernel are the one cause outside ebpfprof: say so here,
            # where it may matter, rather than on every run.
            headers = headers_warning()
            raise KernelError("BCC could not compile the generated program (its errors are above)",
                              detail=f"note: {headers}" if headers else "",
                              hint=f"this is a bug in ebpfprof; the program is in {path}") from None

    def attach(self) -> None:
        """Fill the -p/-t maps and attach every function to its tracepoint."""
        try:
            self._fill_maps()
            for attachment in self.generated.attach:
                if attachment.probe is not None:
                    self._attach_probe(attachment.probe, attachment.function)
                else:
                    self._attach(attachment.tracepoint, attachment.function, attachment.cookie)
        except BaseException:
            self.close()
            raise

    def _fill_maps(self) -> None:
        for name, ids in self.generated.maps_to_fill.items():
            table = self._bpf[name.encode()]
            for i in ids:
                table[ctypes.c_uint32(i)] = ctypes.c_uint8(1)

    def _load(self, fn_name: str, prog_type: int, what: str):
        try:
            with _captured_stderr() as log:
                return self._bpf.load_func(fn_name.encode(), prog_type)
        except Exception:
            text = log[0] if log else ""
            path = _save_log("verifier", text, self.generated.text)
            raise KernelError(f"the kernel's verifier rejected the program for {what}: "
                              f"{_last_meaningful_line(text)}",
                              hint=f"the verifier log and program are in {path}") from None

    def _attach_probe(self, target, fn_name: str) -> None:
        """A probe's function on its own perf event(s) of the probe PMU: one for every process
        with -p (the kernel then probes those alone), else one for all."""
        from ebpfprof.kernel.features import probe_pmu

        bcc = import_bcc()
        fn = self._load(fn_name, bcc.BPF.KPROBE, target.describe())
        pmu_type, ret_bit = probe_pmu(target.pmu)
        if target.retprobe and ret_bit is None:
            raise KernelError(f"cannot attach {target.describe()}: this kernel's {target.pmu} PMU "
                              "has no return probes (no format/retprobe)")
        what = target.path if target.pmu == "uprobe" else target.function
        pids = list(target.pids) if target.pids else [-1]
        attached = 0
        for pid in pids:
            try:
                perf_fd = perf_abi.open_probe_event(pmu_type, retprobe_bit=ret_bit if target.retprobe else None,
                                                    target=what, offset=target.offset, pid=pid)
            except OSError as e:
                if e.errno == errno.ESRCH and pid != -1:
                    continue                   # that process is gone: the others still count
                raise KernelError(f"cannot attach {target.describe()}: {e.strerror}",
                                  hint=_probe_hint(e, target)) from None
            self._perf_fds.append(perf_fd)
            try:
                link_fd = perf_abi.attach_bpf(fn.fd, perf_fd)
            except OSError as e:
                raise KernelError(f"cannot attach {target.describe()}: {e.strerror}") from None
            if link_fd is not None:
                self._link_fds.append(link_fd)
            attached += 1
        if not attached:
            raise UsageError(f"{target.describe()}: the -p processes exited before it could be attached")

    def _attach(self, tracepoint: str, fn_name: str, cookie: int | None) -> None:
        # Not BPF.attach_tracepoint(): it opens a sampling perf event that costs every event
        # its sample once programs return 1 (sources/perf_abi.py says why), and keeps one fd
        # per tracepoint name, so a second function on one tracepoint (alias=) would orphan
        # the first one's. We open our own and keep every fd.
        fn = self._load(fn_name, import_bcc().BPF.TRACEPOINT, tracepoint)
        system, name = tracepoint.split(":", 1)
        try:
            perf_fd = perf_abi.open_tracepoint_event(tracefs.read_format(system, name).id)
        except OSError as e:
            raise KernelError(f"cannot attach to tracepoint {tracepoint}: {e.strerror}",
                              hint=_attach_hint(e)) from None
        self._perf_fds.append(perf_fd)
        try:
            link_fd = perf_abi.attach_bpf(fn.fd, perf_fd, cookie)
        except OSError as e:
            raise KernelError(f"cannot attach to tracepoint {tracepoint}: {e.strerror}",
                              hint="a function shared by a wildcard's tracepoints needs bpf_link "
                                   "cookies (Linux 5.15)" if cookie is not None else "") from None
        if link_fd is not None:
            self._link_fds.append(link_fd)

    @property
    def ring_fd(self) -> int:
        return self._bpf[b"ep_ring"].map_fd

    def table(self, name: str):
        """One of the program's maps, by name."""
        return self._bpf[name.encode()]

    def set_gate(self, is_open: bool) -> None:
        """Open (1) or close (0) the run's gate: one store that every function reads first."""
        self._bpf[b"ep_gate"][ctypes.c_int(0)] = ctypes.c_uint32(1 if is_open else 0)

    def lost_pending(self) -> int:
        """Records lost on any CPU after the last record that was written (read at exit)."""
        try:
            values = self._bpf[b"ep_cpu_state"][ctypes.c_int(0)]
        except Exception:
            return 0
        return sum(int(v.lost) for v in values)

    def missed(self) -> int:
        """Events the kernel skipped because a BPF program was already running on that CPU.

        This happens when a traced task is preempted inside one of our programs (syscall
        tracepoints may sleep since Linux 6.13) and another task hits a tracepoint on the same
        CPU; the kernel counts them per program (bpf_prog_info.recursion_misses, Linux 5.12+).
        """
        total = 0
        silent = {name.encode() for name in self.generated.silent}    # they write no records
        for name, fn in getattr(self._bpf, "funcs", {}).items():
            if name in silent:
                continue
            fd = getattr(fn, "fd", None)
            if fd is not None and fd >= 0:
                total += _prog_recursion_misses(fd)
        return total

    def task_comm(self, tid: int) -> str | None:
        """The name the comm tracker saw given to thread ``tid`` (bpf/comm_map.h), if any."""
        if self._bpf is None:
            return None
        try:
            value = self._bpf[b"ep_comms"][ctypes.c_uint32(tid)]
        except KeyError:       # no such entry, or a program without the tracker
            return None
        return value.comm.decode(errors="replace") or None

    def close(self) -> None:
        # Detaching costs RCU grace periods, one after the other in the kernel: ~35 ms per
        # link (perf_event_detach_bpf_prog) and ~40 ms per tracepoint's perf event
        # (perf_trace_event_unreg), measured here. With more than a few, a child process
        # releases them while we go on; the run's gate is closed first, so the functions they
        # still hold record nothing meanwhile.
        links, perf_fds = self._link_fds, self._perf_fds
        self._link_fds, self._perf_fds = [], []
        if len(perf_fds) > _RELEASE_INLINE_MAX:
            if self._bpf is not None:
                self.set_gate(False)
            perf_abi.release_in_background(links, perf_fds)
        else:
            for fd in links + perf_fds:
                os.close(fd)
        if self._bpf is not None:
            bpf, self._bpf = self._bpf, None
            bpf.cleanup()


# Up to this many attachments are released before close() returns (~75 ms each): a run of a
# few selectors (and the comm tracker's 3) leaves nothing behind when its command returns.
_RELEASE_INLINE_MAX = 16


# fds a function holds while attached: its program, its perf event, its link
_FDS_PER_FUNCTION = 3


def _make_room_for_fds(functions: int) -> None:
    """Up front, not after half the tracepoints are attached: enough fds for all of them."""
    needed = functions * _FDS_PER_FUNCTION + 64
    in_use = len(os.listdir("/proc/self/fd"))
    soft = perf_abi.raise_nofile_limit(in_use + needed)
    if in_use + needed > soft:
        raise UsageError(f"{functions} tracepoints need about {needed} open files, and this process "
                         f"may open {soft}", hint=f"raise the limit first: ulimit -n {needed + in_use}")


def _probe_hint(e: OSError, target) -> str:
    if e.errno == errno.ENOENT:
        return "the file or function is gone (deleted or replaced since it was resolved?)"
    if e.errno == errno.EINVAL:
        return ("the kernel refused the place: a uprobe must be on an instruction's first byte, "
                "in an executable mapping" if target.pmu == "uprobe" else
                "the kernel cannot probe that function (inlined, notrace or blacklisted?)")
    if e.errno in (errno.EPERM, errno.EACCES):
        return "run as root (or with CAP_PERFMON and CAP_BPF)"
    return _attach_hint(e)


def _attach_hint(e: OSError) -> str:
    if e.errno == errno.EMFILE:
        return (f"too many open files: each tracepoint takes {_FDS_PER_FUNCTION} fds; "
                "raise the limit (ulimit -n)")
    return ""


def _comm_tracker() -> CommTracker:
    """The formats of the tracepoints that name tasks, where this kernel has them."""
    def fmt(system: str, name: str):
        try:
            return tracefs.read_format(system, name)
        except EbpfprofError:
            return None
    return CommTracker(fmt("sched", "sched_process_exec"), fmt("sched", "sched_process_fork"),
                       fmt("task", "task_rename"))


def perf_buffer_reason(asked: bool, ringbuf_supported: bool) -> str:
    """Why the BPF source writes to perf rings ("" when it uses the BPF ring buffer)."""
    if asked:
        return "--perf-buffer"
    if not ringbuf_supported:
        return "this kernel has no BPF ring buffer (Linux 5.8+)"
    return ""


def ring_size(config: RunConfig) -> int:
    """-m pages per CPU, as one shared ring: a power of two."""
    return ring_bytes(config.mmap_pages, config.nr_cpus)


# After the gate closes, a function that read it open may still be writing its record (a
# task preempted inside it, since syscall tracepoints may sleep): give it this long to finish
# before the last drain reads the rings and the loss counters.
_IN_FLIGHT_S = 0.005


class BpfSource(Source):
    """Every BPF selector of the run: one program, one ring, one gate."""

    kind = "bpf"

    def __init__(self, config: RunConfig, specs: list) -> None:
        super().__init__(config, specs)
        self.program: LoadedProgram | None = None
        self.perf_buffer: PerfBuffer | None = None      # --perf-buffer's rings, else None
        self._why_perf_buffer = ""
        self._missed_at_start = 0
        self._missed_at_stop: int | None = None
        self.python = None                # --python-callchain: symbols/python.PythonProcesses

    def open(self) -> None:
        from ebpfprof.kernel.features import bpf_ringbuf_supported

        _make_room_for_fds(len(self.specs))
        self._why_perf_buffer = perf_buffer_reason(self.config.perf_buffer, bpf_ringbuf_supported())
        use_perf_buffer = bool(self._why_perf_buffer)
        ring_bytes = ring_size(self.config)
        records = ring_bytes // 64
        wakeup_every = max(64, records // (4 * max(1, self.config.nr_cpus)))
        python = any(s.program.python_stack for s in self.specs)
        generated = generate_program([s.program for s in self.specs],
                                     TaskFilter(self.config.pids, self.config.tids),
                                     ring_pages=ring_bytes // 4096, wakeup_every=wakeup_every,
                                     comms=_comm_tracker(), perf_buffer=use_perf_buffer,
                                     task_fsbase_offset=task_fsbase_offset() if python else None)
        if self.config.verbose >= 2:
            sys.stderr.write(generated.text)
        self.program = LoadedProgram(generated, debug=self.config.verbose >= 3)
        try:
            if use_perf_buffer:                   # -m pages per CPU, as the ring buffer has
                self.perf_buffer = PerfBuffer(self.config.mmap_pages)
                self.perf_buffer.open()           # before attaching: the programs find their rings
                self.perf_buffer.fill(self.program.table("ep_ring"))
            self.program.attach()
            if python:
                from ebpfprof.symbols.python import run_python_processes

                self.python = run_python_processes(self.config)
                self.python.fill(self.program.table("ep_py_procs"))
        except BaseException:
            self.close()
            raise

    def add_rings(self, reader) -> None:
        assert self.program is not None
        if self.perf_buffer is not None:
            self.perf_buffer.add_rings(reader)
        else:
            reader.add_bpf_ring(self.program.ring_fd, ring_size(self.config))

    @property
    def wait_fds(self) -> list[int]:
        if self.program is None:
            return []
        return self.perf_buffer.fds if self.perf_buffer is not None else [self.program.ring_fd]

    def start(self) -> None:
        assert self.program is not None
        self._missed_at_start = self.program.missed()
        self.program.set_gate(True)

    def stop(self) -> None:
        if self.program is None or self._missed_at_stop is not None:
            return
        self.program.set_gate(False)
        time.sleep(_IN_FLIGHT_S)
        self._missed_at_stop = self.program.missed()

    def pending_lost(self) -> int:
        if self.program is None:
            return 0
        missed = self._missed_at_stop if self._missed_at_stop is not None else self.program.missed()
        corrupt = self.perf_buffer.corrupt() if self.perf_buffer is not None else 0
        return self.program.lost_pending() + missed - self._missed_at_start + corrupt

    def task_comm(self, tid: int) -> str | None:
        return self.program.task_comm(tid) if self.program is not None else None

    def describe(self) -> str:
        from ebpfprof.codegen.probe import ProbeProgram

        parts = []
        probes = [s for s in self.specs if isinstance(s.program, ProbeProgram)]
        tracepoints = [s.event.event_id for s in self.specs if not isinstance(s.program, ProbeProgram)]
        if tracepoints:
            shown = ", ".join(tracepoints[:8]) + (", ..." if len(tracepoints) > 8 else "")
            parts.append(f"{len(tracepoints)} tracepoint(s): {shown}")
        if probes:
            parts.append(f"{len(probes)} probe(s): " + ", ".join(s.event.title for s in probes))
        if self.perf_buffer is not None:
            parts.append(f"written to per-CPU perf rings of {self.perf_buffer.pages} pages "
                         f"({self._why_perf_buffer})")
        if self.python is not None:
            parts.append(self.python.describe())
        return "; ".join(parts)

    def stop_notes(self) -> list[str]:
        corrupt = self.perf_buffer.corrupt() if self.perf_buffer is not None else 0
        if corrupt:
            return [f"{corrupt} perf buffer record(s) were not as the programs write them and were "
                    "skipped (counted lost): please report it"]
        return []

    def close(self) -> None:
        if self.program is not None:
            program, self.program = self.program, None
            program.close()      # detach first: no program writes to the rings once they go
        if self.perf_buffer is not None:
            buffer, self.perf_buffer = self.perf_buffer, None
            buffer.close()
