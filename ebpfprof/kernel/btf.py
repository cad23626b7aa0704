"""The running kernel's own type information (BTF, /sys/kernel/btf/vmlinux): member offsets
of kernel structs, so that generated BPF code never takes a layout from headers made for
another kernel (this machine has only generic ones).

Only what ebpfprof needs: find a struct or union by name and read its members' byte offsets
(nested anonymous members are flattened, as C sees them). The format is
Documentation/bpf/btf.rst: a header, a type section of ``struct btf_type`` records each
followed by kind-specific data, and a string section.
"""
from __future__ import annotations

import struct
from functools import lru_cache

__all__ = ["VMLINUX", "BtfError", "struct_offsets", "function_id"]

VMLINUX = "/sys/kernel/btf/vmlinux"

_MAGIC = 0xEB9F
(_INT, _PTR, _ARRAY, _STRUCT, _UNION, _ENUM, _FWD, _TYPEDEF, _VOLATILE, _CONST, _RESTRICT,
 _FUNC, _FUNC_PROTO, _VAR, _DATASEC, _FLOAT, _DECL_TAG, _TYPE_TAG, _ENUM64) = range(1, 20)
# bytes after struct btf_type: fixed, per vlen item
_EXTRA = {_INT: (4, 0), _ARRAY: (12, 0), _STRUCT: (0, 12), _UNION: (0, 12), _ENUM: (0, 8),
          _FUNC_PROTO: (0, 8), _VAR: (4, 0), _DATASEC: (0, 12), _DECL_TAG: (4, 0), _ENUM64: (0, 12)}
_MODIFIERS = (_TYPEDEF, _VOLATILE, _CONST, _RESTRICT, _TYPE_TAG)


class BtfError(RuntimeError):
    """No BTF, or it lacks what was asked."""


class _Btf:
    def __init__(self, data: bytes) -> None:
        magic, _version, _flags, hdr_len, type_off, type_len, str_off, str_len = \
            struct.unpack_from("<HBBIIIII", data, 0)
        if magic != _MAGIC:
            raise BtfError("not BTF (bad magic)")
        self.data = data
        self.strings = hdr_len + str_off
        self.types: list[int] = [0]          # offset of each type's record; type 0 is void
        pos, end = hdr_len + type_off, hdr_len + type_off + type_len
        while pos < end:
            self.types.append(pos)
            _name, info, _size = struct.unpack_from("<III", data, pos)
            kind, vlen = (info >> 24) & 0x1F, info & 0xFFFF
            fixed, per = _EXTRA.get(kind, (0, 0))
            pos += 12 + fixed + per * vlen

    def name(self, off: int) -> str:
        start = self.strings + off
        return self.data[start:self.data.index(b"\0", start)].decode()

    def record(self, type_id: int) -> tuple[str, int, int, int, int]:
        """(name, kind, vlen, kind_flag, size_or_type)"""
        pos = self.types[type_id]
        name_off, info, size = struct.unpack_from("<III", self.data, pos)
        return self.name(name_off), (info >> 24) & 0x1F, info & 0xFFFF, info >> 31, size

    def find(self, name: str, kinds=(_STRUCT, _UNION)) -> int | None:
        for type_id in range(1, len(self.types)):
            rec_name, kind, *_ = self.record(type_id)
            if kind in kinds and rec_name == name:
                return type_id
        return None

    def members(self, type_id: int, base: int = 0) -> dict[str, int]:
        """name -> byte offset, anonymous structs and unions flattened."""
        _name, kind, vlen, kind_flag, _size = self.record(type_id)
        out: dict[str, int] = {}
        pos = self.types[type_id] + 12
        for i in range(vlen):
            name_off, member_type, offset = struct.unpack_from("<III", self.data, pos + 12 * i)
            bits = offset & 0xFFFFFF if kind_flag else offset
            if bits % 8:
                continue                       # a bitfield: no byte offset
            name = self.name(name_off)
            at = base + bits // 8
            if name:
                out.setdefault(name, at)
            else:
                inner = self._resolve(member_type)
                if self.record(inner)[1] in (_STRUCT, _UNION):
                    for k, v in self.members(inner, at).items():
                        out.setdefault(k, v)
        return out

    def _resolve(self, type_id: int) -> int:
        while type_id and self.record(type_id)[1] in _MODIFIERS:
            type_id = self.record(type_id)[4]
        return type_id


@lru_cache(maxsize=1)
def _vmlinux(path: str) -> _Btf:
    try:
        with open(path, "rb") as f:
            return _Btf(f.read())
    except OSError as e:
        raise BtfError(f"cannot read {path}: {e.strerror} (a kernel built without CONFIG_DEBUG_INFO_BTF?)") from None


def function_id(name: str, path: str = VMLINUX) -> int | None:
    """The BTF type id of kernel function ``name`` (what fentry programs attach by), or None."""
    return _vmlinux(path).find(name, kinds=(_FUNC,))


@lru_cache(maxsize=8)
def struct_offsets(name: str, path: str = VMLINUX) -> dict[str, int]:
    """Byte offset of every member of ``struct name`` (or union) in the kernel's BTF."""
    btf = _vmlinux(path)
    type_id = btf.find(name)
    if type_id is None:
        raise BtfError(f"struct {name} is not in {path}")
    return btf.members(type_id)
