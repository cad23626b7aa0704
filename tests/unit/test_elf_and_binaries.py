"""symbols/elf.py and symbols/binaries.py on this machine's real files (libc, bash)."""
from __future__ import annotations

import os

import pytest

from ebpfprof.symbols.binaries import find_binary, library_candidates
from ebpfprof.symbols.elf import ElfFile, NotElf, elf_file

LIBC = find_binary("c", os.getpid())


def test_library_short_names_find_the_loaded_libc():
    assert LIBC and os.path.basename(LIBC) == "libc.so.6" and os.path.isfile(LIBC)
    assert find_binary("libc", os.getpid()) == LIBC
    assert find_binary("libc.so.6", os.getpid()) == LIBC
    # without a process: the linker's cache
    assert os.path.basename(find_binary("c")) == "libc.so.6"


def test_programs_on_path_and_paths():
    bash = find_binary("bash")
    assert bash and os.path.basename(bash) == "bash" and os.access(bash, os.X_OK)
    assert find_binary("./relative/x") == os.path.abspath("./relative/x")
    assert find_binary("no-such-library-or-program-zz") is None


@pytest.mark.parametrize("name, file, matches", [
    ("c", "libc.so.6", True), ("c", "libcrypt.so.1", False), ("pthread", "libpthread.so.0", True),
    ("libc.so.6", "libc.so.6", True), ("libc.so.6", "libc.so.60", False), ("z", "libz.so.1.2.13", True),
    ("python", "libpython3.11.so.1.0", False), ("python3.11", "libpython3.11.so.1.0", True),
])
def test_library_candidates(name, file, matches):
    assert bool(library_candidates(name).match(file)) is matches


def test_libc_symbols_and_offsets():
    elf = elf_file(LIBC)
    assert elf.position_independent
    malloc = elf.symbol("malloc")
    assert malloc and malloc.is_function and malloc.size > 0
    off = elf.file_offset(malloc.value)
    assert off is not None and elf.address_of_offset(off) == malloc.value
    assert elf.function_at(malloc.value + malloc.size - 1).value == malloc.value
    assert "free" in elf.function_names()
    assert elf.symbol("memcpy")          # versioned in .dynsym: memcpy@@GLIBC_2.14
    assert elf_file(LIBC) is elf         # read once


def test_not_elf(tmp_path):
    p = tmp_path / "script.sh"
    p.write_text("#!/bin/sh\necho hi\n")
    with pytest.raises(NotElf, match="not an ELF64"):
        ElfFile(str(p))
