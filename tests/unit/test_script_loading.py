"""Loading the user's MODULE (SPEC §1, §4, §8) and finding its callbacks.

load_module changes interpreter state on purpose (sys.path, sys.argv, sys.modules); a fixture
puts all three back after each test.
"""
from __future__ import annotations

import os
import re
import sys
import textwrap
import types

import pytest

from ebpfprof.errors import ScriptError
from ebpfprof.resolve.spec import handler_name
from ebpfprof.run.script import Callbacks, find_callbacks, find_handler, load_module


@pytest.fixture(autouse=True)
def _interpreter_state(monkeypatch, tmp_path):
    path, argv, modules = list(sys.path), list(sys.argv), set(sys.modules)
    monkeypatch.chdir(tmp_path)
    yield
    sys.path[:] = path
    sys.argv[:] = argv
    for name in set(sys.modules) - modules:
        del sys.modules[name]


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


PROBE = """
    import sys
    ARGV = list(sys.argv)
    PATH0 = sys.path[0]
    NAME = __name__
"""


def test_script_path(tmp_path):
    write(tmp_path / "sub" / "probe.py", PROBE)
    m = load_module("sub/probe.py", ("a", "-b", "--c"))
    assert m.ARGV == ["sub/probe.py", "a", "-b", "--c"]
    assert sys.argv == ["sub/probe.py", "a", "-b", "--c"]
    assert m.PATH0 == str(tmp_path / "sub") == sys.path[0]
    assert m.NAME == "probe"
    assert m.__file__ == str(tmp_path / "sub" / "probe.py")


def test_absolute_path_and_no_args(tmp_path):
    script = write(tmp_path / "abs_probe.py", PROBE)
    m = load_module(str(script))
    assert m.ARGV == [str(script)]
    assert m.PATH0 == str(tmp_path)


def test_script_dir_moves_to_the_front_of_sys_path(tmp_path):
    write(tmp_path / "d" / "front_probe.py", PROBE)
    sys.path.append(str(tmp_path / "d"))
    load_module("d/front_probe.py")
    assert sys.path[0] == str(tmp_path / "d")
    assert sys.path.count(str(tmp_path / "d")) == 1


def test_script_can_import_its_neighbours(tmp_path):
    write(tmp_path / "lib" / "helper_mod_x.py", "VALUE = 41\n")
    write(tmp_path / "lib" / "main_x.py", "import helper_mod_x\nVALUE = helper_mod_x.VALUE + 1\n")
    assert load_module("lib/main_x.py").VALUE == 42


def test_module_name_found_from_the_cwd(tmp_path):
    write(tmp_path / "my_analyzer_mod.py", PROBE)
    m = load_module("my_analyzer_mod", ("x",))
    assert m.NAME == "my_analyzer_mod"
    assert m.ARGV == ["my_analyzer_mod", "x"]
    assert m.PATH0 == str(tmp_path)


def test_package_module_name(tmp_path):
    write(tmp_path / "pkg_x" / "__init__.py", "")
    write(tmp_path / "pkg_x" / "an.py", "def __sample__(event):\n    pass\n")
    m = load_module("pkg_x.an")
    assert m.__name__ == "pkg_x.an" and find_callbacks(m).sample is not None


def test_script_without_py_suffix(tmp_path):
    write(tmp_path / "noext_script", "import sys\nARGV = list(sys.argv)\n")
    m = load_module("./noext_script", ("1",))
    assert m.ARGV == ["./noext_script", "1"]


def test_stat_py_is_the_users_file(tmp_path):
    import stat as stdlib_stat

    write(tmp_path / "stat.py", """
        MARK = "user's stat"
        def __sample__(event):
            pass
    """)
    m = load_module("stat.py")
    assert m.MARK == "user's stat"
    assert find_callbacks(m).sample is m.__sample__
    import stat
    assert stat is stdlib_stat and stat.S_ISDIR(0o040755)
    assert sys.modules["stat"] is stdlib_stat


def test_argv_is_set_before_the_script_runs(tmp_path):
    write(tmp_path / "argv_at_load.py", """
        import sys
        if sys.argv[1:] != ["--threshold", "100"]:
            raise SystemExit("wrong argv: %r" % sys.argv)
    """)
    load_module("argv_at_load.py", ("--threshold", "100"))


# -- errors: ScriptError, and the script's own traceback -------------------------------------------------

def frames_in(traceback_text: str) -> list[str]:
    return re.findall(r'^  File "([^"]+)"', traceback_text, re.M)


def test_syntax_error_shows_the_scripts_traceback(tmp_path, capsys):
    write(tmp_path / "bad.py", "x = 1\ndef f(:\n    pass\n")
    with pytest.raises(ScriptError) as info:
        load_module("bad.py")
    assert info.value.message == "cannot load script bad.py: SyntaxError: invalid syntax (bad.py, line 2)"
    assert info.value.exit_code != 0
    err = capsys.readouterr().err
    assert frames_in(err) == [str(tmp_path / "bad.py")]
    assert "    def f(:\n" in err and err.rstrip().endswith("SyntaxError: invalid syntax")
    assert "bad" not in sys.modules


def test_exception_while_loading_shows_only_the_scripts_frames(tmp_path, capsys):
    write(tmp_path / "raises_at_load.py", """
        def helper():
            raise ValueError("boom at load")
        helper()
    """)
    with pytest.raises(ScriptError) as info:
        load_module("raises_at_load.py")
    assert info.value.message == "cannot load script raises_at_load.py: ValueError: boom at load"
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):\n")
    assert frames_in(err) == [str(tmp_path / "raises_at_load.py")] * 2
    assert err.rstrip().endswith("ValueError: boom at load")
    assert "raises_at_load" not in sys.modules


def test_exception_in_a_module_name_import_hides_importlib(tmp_path, capsys):
    write(tmp_path / "raises_mod_x.py", "raise KeyError('k')\n")
    with pytest.raises(ScriptError):
        load_module("raises_mod_x")
    err = capsys.readouterr().err
    assert frames_in(err) == [str(tmp_path / "raises_mod_x.py")]


def test_import_error_inside_the_script(tmp_path, capsys):
    write(tmp_path / "needs_missing.py", "import no_such_module_xyz\n")
    with pytest.raises(ScriptError) as info:
        load_module("needs_missing.py")
    assert info.value.message == ("cannot load script needs_missing.py: ModuleNotFoundError: "
                                  "No module named 'no_such_module_xyz'")
    assert frames_in(capsys.readouterr().err) == [str(tmp_path / "needs_missing.py")]


def test_exit_while_loading(tmp_path):
    write(tmp_path / "exits.py", "raise SystemExit(3)\n")
    with pytest.raises(ScriptError) as info:
        load_module("exits.py")
    assert info.value.message == "script exits.py called exit(3) while loading"


def test_missing_file():
    with pytest.raises(ScriptError) as info:
        load_module("nope.py")
    assert info.value.format() == ("ebpfprof: error: Failed to load Python module: nope.py: no such file\n"
                                   "hint: check the path (relative paths start from the current directory)")


def test_missing_file_in_a_directory():
    with pytest.raises(ScriptError, match=r"^Failed to load Python module: dir/nope: no such file$"):
        load_module(os.path.join("dir", "nope"))


def test_missing_module_name():
    with pytest.raises(ScriptError) as info:
        load_module("no_such_module_xyz")
    assert info.value.message == ("Failed to load Python module: no_such_module_xyz: no file "
                                  "'no_such_module_xyz' and no module 'no_such_module_xyz' on sys.path")


def test_directory_is_not_a_script(tmp_path):
    (tmp_path / "adir").mkdir()
    with pytest.raises(ScriptError, match=r"^Failed to load Python module: adir: it is a directory$"):
        load_module("adir")


# -- callbacks --------------------------------------------------------------------------------------

def test_all_callbacks_found(tmp_path):
    write(tmp_path / "all_cbs.py", """
        def __init__(): pass
        def __exit__(): pass
        def __interval__(): pass
        def __print_stat__(indent): pass
        def __lost__(lost_start, lost_end): pass
        def __sample__(event): pass
        def sched__sched_wakeup(event): pass
    """)
    m = load_module("all_cbs.py")
    cb = find_callbacks(m)
    assert cb == Callbacks(init=m.__init__, exit=m.__exit__, interval=m.__interval__,
                           print_stat=m.__print_stat__, lost=m.__lost__, sample=m.__sample__)
    assert find_handler(m, "sched__sched_wakeup") is m.sched__sched_wakeup
    assert find_handler(m, "sched__sched_switch") is None


def test_module_types_own_init_is_not_a_callback(tmp_path):
    write(tmp_path / "no_cbs.py", "X = 1\n")
    m = load_module("no_cbs.py")
    assert callable(getattr(m, "__init__"))        # ModuleType.__init__ is always there...
    assert find_callbacks(m) == Callbacks()        # ...but it is not the script's __init__


def test_classes_and_non_callables_are_not_callbacks(tmp_path):
    write(tmp_path / "odd_cbs.py", """
        class __sample__:
            def __init__(self, event): pass
        class sched__sched_wakeup: pass
        __exit__ = 5
        __interval__ = None
        __lost__ = "text"
    """)
    m = load_module("odd_cbs.py")
    assert find_callbacks(m) == Callbacks()
    assert find_handler(m, "sched__sched_wakeup") is None


def test_callable_objects_and_lambdas_are_callbacks():
    m = types.ModuleType("made")

    class Counter:
        def __call__(self, event):
            pass

    m.__sample__ = Counter()
    m.__exit__ = lambda: None
    m.sched__x = print
    cb = find_callbacks(m)
    assert cb.sample is m.__sample__ and cb.exit is m.__exit__
    assert find_handler(m, "sched__x") is print


@pytest.mark.parametrize("prefix, name, handler", [
    ("sched", "sched_wakeup", "sched__sched_wakeup"),
    ("sched", "w-1.x:y", "sched__w_1_x_y"),
    (None, "page-faults", "page_faults"),
    (None, "profile", "profile"),
    ("xhci-hcd", "xhci_urb_enqueue", "xhci_hcd__xhci_urb_enqueue"),
])
def test_handler_names(prefix, name, handler):
    assert handler_name(prefix, name) == handler
    assert handler.isidentifier()
