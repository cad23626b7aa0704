"""Where a function's instructions start, from binutils' objdump.

A uprobe placed inside an instruction replaces a byte of it with int3: the program then runs a
different instruction stream and usually crashes. bpftrace refuses such offsets unless it can
check them; so do we, by disassembling the function. x86 instructions are 1 to 15 bytes long,
so only a disassembler knows; objdump comes with binutils (a dependency of gcc).
"""
from __future__ import annotations

import re
import shutil
import subprocess
from functools import lru_cache

__all__ = ["DisassemblyUnavailable", "instruction_starts"]

_LINE = re.compile(r"^\s*([0-9a-f]+):\t")


class DisassemblyUnavailable(RuntimeError):
    """objdump is missing or could not read the file; the message says which."""


@lru_cache(maxsize=64)
def instruction_starts(path: str, start: int, end: int) -> frozenset[int]:
    """The addresses (the file's own, as ``nm`` prints them) where an instruction starts in
    [start, end). DisassemblyUnavailable if objdump is missing or fails."""
    objdump = shutil.which("objdump")
    if objdump is None:
        raise DisassemblyUnavailable("objdump is not installed (apt-get install binutils)")
    try:
        out = subprocess.run(
            [objdump, "-d", "--no-show-raw-insn", f"--start-address=0x{start:x}",
             f"--stop-address=0x{end:x}", path],
            capture_output=True, text=True, timeout=30, check=False)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise DisassemblyUnavailable(f"objdump failed on {path}: {e}") from None
    if out.returncode != 0:
        first = (out.stderr.strip().splitlines() or ["no output"])[0]
        raise DisassemblyUnavailable(f"objdump failed on {path}: {first}")
    starts = set()
    for line in out.stdout.splitlines():
        m = _LINE.match(line)
        if m:
            address = int(m.group(1), 16)
            if start <= address < end:
                starts.add(address)
    return frozenset(starts)
