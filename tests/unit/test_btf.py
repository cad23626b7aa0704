"""kernel/btf.py on this kernel's /sys/kernel/btf/vmlinux (read-only: no BPF, no root needed)."""
from __future__ import annotations

import os
import platform
import shutil
import subprocess

import pytest

from ebpfprof.kernel.btf import VMLINUX, BtfError, struct_offsets

pytestmark = pytest.mark.skipif(not os.path.exists(VMLINUX), reason=f"this kernel has no {VMLINUX}")


@pytest.mark.skipif(platform.machine() != "x86_64", reason="x86-64's pt_regs layout")
def test_pt_regs_is_the_ptrace_layout_on_x86_64():
    # struct pt_regs is user_regs_struct's order (r15 first); anonymous unions flattened (cs/csx)
    o = struct_offsets("pt_regs")
    assert [o[r] for r in ("r15", "di", "si", "dx", "cx", "r8", "r9", "ax", "ip", "sp")] == \
        [0, 112, 104, 96, 88, 72, 64, 80, 128, 152]
    assert o["cs"] == o["csx"] == 136


def test_matches_bpftool():
    if not shutil.which("bpftool"):
        pytest.skip("bpftool is not installed")
    out = subprocess.run(["bpftool", "btf", "dump", "file", VMLINUX, "format", "raw"],
                         capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    start = next(i for i, l in enumerate(lines) if l.split()[1:3] == ["STRUCT", "'bpf_perf_event_data'"])
    want = {}
    for line in lines[start + 1:]:
        if not line.startswith("\t"):
            break
        name, _type, bits = line.split()[:3]
        want[name.strip("'")] = int(bits.split("=")[1]) // 8
    assert struct_offsets("bpf_perf_event_data") == want


def test_unknown_struct():
    with pytest.raises(BtfError, match="struct no_such_struct_zz is not in"):
        struct_offsets("no_such_struct_zz")


def test_not_btf(tmp_path):
    p = tmp_path / "x"
    p.write_bytes(b"\0" * 64)
    with pytest.raises(BtfError, match="not BTF"):
        struct_offsets("pt_regs", str(p))
