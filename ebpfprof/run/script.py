"""Load the user's module and find its callbacks.

``MODULE`` may be a script path (``x.py``), a compiled extension (``x.cpython-311-x86_64-linux-gnu.so``,
e.g. built with Cython) or a module name found on ``sys.path`` (the current directory first).
The module's directory goes first on ``sys.path`` and ``sys.argv`` is ``[MODULE, *ARGS]``.

A script named like an already-imported module (``stat.py``) is still the user's file: it is
executed from its path under its own name, without replacing the module in ``sys.modules``.
"""
from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import traceback
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

from ebpfprof.errors import ScriptError

__all__ = ["load_module", "Callbacks", "find_callbacks", "find_handler", "print_script_traceback"]


@dataclass(frozen=True)
class Callbacks:
    """The module-level callbacks a script defines (None where it does not)."""

    init: Callable | None = None
    exit: Callable | None = None
    interval: Callable | None = None
    print_stat: Callable | None = None
    lost: Callable | None = None
    sample: Callable | None = None


def _module_name_for(path: str) -> str:
    base = os.path.basename(path)
    return base.split(".", 1)[0]


_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


def print_script_traceback(exc: BaseException) -> None:
    """The script's own traceback on stderr: the leading frames of ebpfprof and of the
    import machinery (which only called into the script) are left out."""
    tb = exc.__traceback__
    while tb is not None:
        filename = tb.tb_frame.f_code.co_filename
        if not (filename.startswith(_PACKAGE_DIR + os.sep) or "importlib" in filename):
            break
        tb = tb.tb_next
    traceback.print_exception(type(exc), exc, tb, file=sys.stderr)


def _exec_from_path(path: str, argv0: str) -> ModuleType:
    path = os.path.abspath(path)
    name = _module_name_for(path)
    is_extension = any(path.endswith(s) for s in importlib.machinery.EXTENSION_SUFFIXES)
    if is_extension:
        loader = importlib.machinery.ExtensionFileLoader(name, path)
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    else:
        loader = importlib.machinery.SourceFileLoader(name, path)
        spec = importlib.util.spec_from_file_location(name, path, loader=loader)
    if spec is None or spec.loader is None:
        raise ScriptError(f"cannot load {argv0}: not a Python script or extension module")
    module = importlib.util.module_from_spec(spec)
    # Register under its name only if that does not shadow a module already in use (stat.py).
    registered = name not in sys.modules
    if registered:
        sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        if registered:
            sys.modules.pop(name, None)
        raise
    return module


# perf-prof's words for a module it cannot find, which its users' tooling may match on
_NOT_LOADED = "Failed to load Python module: "


def load_module(spec: str, args: tuple[str, ...] | list[str] = ()) -> ModuleType:
    """Import the user's module; a ScriptError (after the script's own traceback) if it fails."""
    if os.path.exists(spec):
        if os.path.isdir(spec):
            raise ScriptError(f"{_NOT_LOADED}{spec}: it is a directory",
                              hint="give a .py file, a .so module or a module name")
        directory = os.path.dirname(os.path.abspath(spec))
        load = lambda: _exec_from_path(spec, spec)  # noqa: E731
    elif spec.endswith(".py") or os.sep in spec:
        raise ScriptError(f"{_NOT_LOADED}{spec}: no such file",
                          hint="check the path (relative paths start from the current directory)")
    else:
        directory = os.getcwd()
        load = lambda: importlib.import_module(spec)  # noqa: E731

    if directory in sys.path:
        sys.path.remove(directory)
    sys.path.insert(0, directory)
    sys.argv = [spec, *args]
    if not os.path.exists(spec) and not _module_exists(spec):
        raise ScriptError(f"{_NOT_LOADED}{spec}: no file {spec!r} and no module {spec!r} on sys.path",
                          hint="give a path to a .py or .so file, or a module name importable "
                               "from the current directory")
    try:
        return load()
    except SystemExit as e:
        raise ScriptError(f"script {spec} called exit({e.code}) while loading") from None
    except BaseException as e:  # the script's own error: show its traceback
        if isinstance(e, KeyboardInterrupt):
            raise
        print_script_traceback(e)
        kind = type(e).__name__
        raise ScriptError(f"cannot load script {spec}: {kind}: {e}") from None


def _module_exists(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def _callable_attr(module: ModuleType, name: str) -> Callable | None:
    # Look in the module's own namespace: getattr(module, "__init__") would find ModuleType's.
    value = vars(module).get(name)
    if value is None or isinstance(value, type) or not callable(value):
        return None
    return value


def find_callbacks(module: ModuleType) -> Callbacks:
    return Callbacks(
        init=_callable_attr(module, "__init__"),
        exit=_callable_attr(module, "__exit__"),
        interval=_callable_attr(module, "__interval__"),
        print_stat=_callable_attr(module, "__print_stat__"),
        lost=_callable_attr(module, "__lost__"),
        sample=_callable_attr(module, "__sample__"),
    )


def find_handler(module: ModuleType, name: str) -> Callable | None:
    return _callable_attr(module, name)
