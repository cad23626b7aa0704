"""Compile, load and attach a generated program with BCC — the only module that imports bcc.

BCC is Debian's ``python3-bpfcc`` (not on PyPI). When our interpreter cannot import it (a venv
without system site-packages), we load it from the system's dist-packages directory by path,
without adding that whole directory to ``sys.path``.
"""
from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
import tempfile
import threading
from contextlib import contextmanager
from typing import Iterator

from ..codegen import GeneratedProgram
from ..errors import KernelError, MissingDependency
from ..kernel.features import kernel_headers

__all__ = ["import_bcc", "LoadedProgram", "headers_warning", "BCC_PACKAGE_HINT"]

BCC_PACKAGE_HINT = "install it: apt-get install python3-bpfcc (Debian/Ubuntu) — BCC is not on PyPI"
_SYSTEM_SITES = ("/usr/lib/python3/dist-packages", "/usr/lib/python3/site-packages",
                 "/usr/local/lib/python3/dist-packages")


_IMPORT_LOCK = threading.Lock()


def preload_bcc() -> None:
    """Start loading BCC (a large library: 25–200 ms) in the background; errors surface later,
    from import_bcc() in the main thread."""
    def load():
        try:
            import_bcc()
        except Exception:
            pass
    threading.Thread(target=load, name="ebpfprof-bcc-preload", daemon=True).start()


def import_bcc():
    """The bcc module, from our environment or the system's; MissingDependency if absent."""
    with _IMPORT_LOCK:
        return _import_bcc()


def _import_bcc():
    if "bcc" in sys.modules:
        return sys.modules["bcc"]
    if not os.environ.get("EBPFPROF_HIDE_BCC"):
        try:
            import bcc  # noqa: F401  (an environment that has it)
            return sys.modules["bcc"]
        except ImportError:
            pass
        for site in _SYSTEM_SITES:
            init = os.path.join(site, "bcc", "__init__.py")
            if os.path.isfile(init):
                spec = importlib.util.spec_from_file_location(
                    "bcc", init, submodule_search_locations=[os.path.dirname(init)])
                if spec is None or spec.loader is None:
                    continue
                module = importlib.util.module_from_spec(spec)
                sys.modules["bcc"] = module
                try:
                    spec.loader.exec_module(module)
                except OSError as e:
                    del sys.modules["bcc"]
                    raise MissingDependency(f"BCC's library cannot be loaded: {e}",
                                            hint="install it: apt-get install libbpfcc") from None
                except Exception:
                    del sys.modules["bcc"]
                    raise
                return module
    raise MissingDependency("BCC (the bcc Python module) is not installed", hint=BCC_PACKAGE_HINT)


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


_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine, -1)
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
        self._attach_fds: list[int] = []
        bcc = import_bcc()
        try:
            self._bpf = bcc.BPF(text=generated.text.encode(), debug=0x20 if debug else 0)
        except Exception as e:
            path = _save_log("compile", str(e), generated.text)
            raise KernelError("BCC could not compile the generated program (its errors are above)",
                              hint=f"this is a bug in ebpfprof; the program is in {path}") from None

    def attach(self) -> None:
        """Fill the -p/-t maps and attach every function to its tracepoint."""
        try:
            self._fill_maps()
            for tracepoint, fn_name in self.generated.attach:
                self._attach(tracepoint, fn_name)
        except BaseException:
            self.close()
            raise

    def _fill_maps(self) -> None:
        for name, ids in self.generated.maps_to_fill.items():
            table = self._bpf[name.encode()]
            for i in ids:
                table[ctypes.c_uint32(i)] = ctypes.c_uint8(1)

    def _attach(self, tracepoint: str, fn_name: str) -> None:
        # Not BPF.attach_tracepoint(): it keeps one perf fd per tracepoint name, so a second
        # program on the same tracepoint (alias=) would orphan the first one's fd. We keep
        # every fd and close them ourselves.
        bcc = import_bcc()
        try:
            with _captured_stderr() as log:
                fn = self._bpf.load_func(fn_name.encode(), bcc.BPF.TRACEPOINT)
        except Exception:
            text = log[0] if log else ""
            path = _save_log("verifier", text, self.generated.text)
            raise KernelError(f"the kernel's verifier rejected the program for {tracepoint}: "
                              f"{_last_meaningful_line(text)}",
                              hint=f"the verifier log and program are in {path}") from None
        system, name = tracepoint.split(":", 1)
        with _captured_stderr() as log:
            fd = bcc.libbcc.lib.bpf_attach_tracepoint(fn.fd, system.encode(), name.encode())
        if fd < 0:
            reason = _last_meaningful_line(log[0]) if log and log[0].strip() else "refused"
            raise KernelError(f"cannot attach to tracepoint {tracepoint}: {reason}")
        self._attach_fds.append(fd)

    @property
    def ring_fd(self) -> int:
        return self._bpf[b"ep_ring"].map_fd

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
        for fn in getattr(self._bpf, "funcs", {}).values():
            fd = getattr(fn, "fd", None)
            if fd is not None and fd >= 0:
                total += _prog_recursion_misses(fd)
        return total

    def close(self) -> None:
        # Closing a perf fd detaches its program; then BCC releases programs and maps.
        while self._attach_fds:
            os.close(self._attach_fds.pop())
        if self._bpf is not None:
            bpf, self._bpf = self._bpf, None
            bpf.cleanup()


def headers_warning() -> str | None:
    """One line to say when BCC compiles with headers not made for the running kernel."""
    headers = kernel_headers()
    if headers.exact:
        return None
    return (f"no kernel headers for {os.uname().release}; BCC uses {os.path.realpath(headers.path)} "
            "(fine for tracepoints: their layouts come from tracefs)")
