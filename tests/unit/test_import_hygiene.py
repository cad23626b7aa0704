"""`import ebpfprof` stays light: BCC is imported only when a run loads programs (STYLE: click).

Each check runs in a fresh interpreter, because this test process may already have imported
anything.
"""
from __future__ import annotations

import json
import subprocess
import sys

import pytest


def modules_after(code: str) -> set[str]:
    prog = code + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    proc = subprocess.run([sys.executable, "-c", prog], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


def test_import_ebpfprof_does_not_import_bcc():
    mods = modules_after("import ebpfprof\nassert ebpfprof.PerfEvent.__name__ == 'PerfEvent'")
    assert "ebpfprof" in mods and "ebpfprof._ring" in mods
    assert not {m for m in mods if m == "bcc" or m.startswith("bcc.")}
    # nor the CLI and its dependencies: a script importing ebpfprof for PerfEvent pays for nothing else
    assert "click" not in mods and "ebpfprof.cli" not in mods


@pytest.mark.parametrize("module", [
    "ebpfprof.cli", "ebpfprof.run.session", "ebpfprof.run.dispatch", "ebpfprof.run.script", "ebpfprof.output.template",
    "ebpfprof.output.printing", "ebpfprof.codegen.program", "ebpfprof.resolve", "ebpfprof.symbols",
    "ebpfprof.kernel.features", "ebpfprof.sources.bpf",
])
def test_importing_a_module_does_not_import_bcc(module):
    mods = modules_after(f"import {module}")
    assert module in mods
    assert "bcc" not in mods


def test_cli_help_and_usage_errors_do_not_import_bcc():
    code = ("import contextlib, io, sys\n"
            "from ebpfprof.cli import main\n"
            "with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):\n"
            "    assert main(['python', '--help']) == 0\n"
            "    assert main(['python', '-e', 'a:b', '-m', '3', 'x.py']) == 2\n")
    assert "bcc" not in modules_after(code)


def test_python_dash_m_ebpfprof_help_does_not_import_bcc():
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "ebpfprof", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    imported = {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "ebpfprof.cli" in imported
    assert "bcc" not in imported
