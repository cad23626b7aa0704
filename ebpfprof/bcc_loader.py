"""Find and import BCC — the only module that imports bcc.

BCC is Debian's ``python3-bpfcc`` (not on PyPI). When our interpreter cannot import it (a venv
without system site-packages), we load it from the system's dist-packages directory by path,
without adding that whole directory to ``sys.path``.
"""
from __future__ import annotations

import importlib.util
import os
import sys
import threading

from ebpfprof.errors import MissingDependency
from ebpfprof.kernel.features import kernel_headers

__all__ = ["import_bcc", "preload_bcc", "headers_warning", "BCC_PACKAGE_HINT"]

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


def headers_warning() -> str | None:
    """One line to say when BCC compiles with headers not made for the running kernel."""
    headers = kernel_headers()
    if headers.exact:
        return None
    return (f"no kernel headers for {os.uname().release}; BCC uses {os.path.realpath(headers.path)} "
            "(fine for tracepoints: their layouts come from tracefs)")
