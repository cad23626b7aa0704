"""PerfEvent (SPEC §5) on records built by hand: every access method, every field kind, bad data.

Events are made with ``_ring.make_event`` from ``struct.pack``-ed records laid out as the fixture
format files say, with the EventClass built the way a run builds it (``session.field_specs``).
One test feeds the real C reader a fake BPF ring (a memfd laid out like the kernel's) to check
that events kept by a handler stay valid after the ring bytes are reused.
"""
from __future__ import annotations

import contextlib
import gc
import mmap
import os
import random
import struct
from pathlib import Path

import pytest

import support

import ebpfprof
from ebpfprof import _ring
from ebpfprof.kernel.event_format import parse_format
from ebpfprof.symbols import (
    CONTEXT_KERNEL, CONTEXT_USER, KERNEL_DSO, CallchainResolver, KernelSymbols,
)
from ebpfprof.run.events import field_specs

fixture_format = support.fixture_format

BUILTINS = ["_pid", "_tid", "_time", "_cpu", "_period", "_realtime", "_event", "_callchain"]
COMMON = ["common_type", "common_flags", "common_preempt_count", "common_pid"]


pytestmark = pytest.mark.usefixtures("clean_ring_state")


def event_class(fmt, name: str | None = None, handler=None):
    return _ring.EventClass(name or fmt.full_name, handler, field_specs(fmt), support.event_spec(fmt))


def common(event_id: int, flags: int = 0, preempt: int = 0, pid: int = 0) -> bytes:
    return struct.pack("<HBBi", event_id, flags, preempt, pid)


def wakeup_raw(comm=b"bash", pid=8738, prio=120, target_cpu=0, flags=0x0D, preempt=2, common_pid=8743) -> bytes:
    return common(374, flags, preempt, common_pid) + struct.pack("<16siii", comm, pid, prio, target_cpu)


@pytest.fixture
def wakeup():
    fmt = fixture_format("sched_sched_wakeup")
    cls = event_class(fmt)
    return _ring.make_event(cls, 767594114000, 8743, 8744, 3, wakeup_raw())


# -- access methods --------------------------------------------------------------------------

def test_attribute_and_item_access(wakeup):
    assert (wakeup.comm, wakeup.pid, wakeup.prio, wakeup.target_cpu) == ("bash", 8738, 120, 0)
    assert (wakeup["comm"], wakeup["pid"]) == ("bash", 8738)
    assert (wakeup._pid, wakeup._tid, wakeup._time, wakeup._cpu) == (8743, 8744, 767594114000, 3)
    assert (wakeup._period, wakeup._event, wakeup._callchain) == (1, "sched:sched_wakeup", [])
    assert (wakeup.common_type, wakeup.common_flags, wakeup.common_preempt_count, wakeup.common_pid) == (
        374, 0x0D, 2, 8743)


def test_get_and_contains(wakeup):
    assert wakeup.get("pid") == 8738
    assert wakeup.get("pid", 5) == 8738
    assert wakeup.get("nope") is None
    assert wakeup.get("nope", 5) == 5
    assert wakeup.get(42, "d") == "d"
    with pytest.raises(TypeError):
        wakeup.get()
    assert "comm" in wakeup and "_callchain" in wakeup and "common_pid" in wakeup
    assert "nope" not in wakeup and 1 not in wakeup


def test_len_keys_values_items(wakeup):
    keys = BUILTINS + COMMON + ["comm", "pid", "prio", "target_cpu"]
    assert len(wakeup) == len(keys) == 16
    assert wakeup.keys() == keys
    values = [8743, 8744, 767594114000, 3, 1, 767594114000, "sched:sched_wakeup", [],
              374, 0x0D, 2, 8743, "bash", 8738, 120, 0]
    assert wakeup.values() == values
    assert wakeup.items() == list(zip(keys, values))
    assert list(wakeup) == list(zip(keys, values))
    assert [k for k, _ in wakeup] == keys


def test_to_dict_and_str(wakeup):
    d = wakeup.to_dict()
    assert type(d) is dict
    assert list(d) == wakeup.keys()
    assert d["comm"] == "bash" and d["_event"] == "sched:sched_wakeup"
    assert str(wakeup) == str(d)
    d["pid"] = 0                      # a copy: the event does not change
    assert wakeup.pid == 8738


def test_repr_exact(wakeup):
    assert repr(wakeup) == "<PerfEvent sched:sched_wakeup cpu=3 pid=8743 time=767594114000>"


def test_repr_uses_the_alias():
    fmt = fixture_format("sched_sched_wakeup")
    ev = _ring.make_event(event_class(fmt, "sched:w1"), 5, 1, 2, 0, wakeup_raw())
    assert repr(ev) == "<PerfEvent sched:w1 cpu=0 pid=1 time=5>"
    assert ev._event == "sched:w1"


def test_hash_is_stable_and_usable(wakeup):
    h = hash(wakeup)
    assert h == hash(wakeup) and h != -1
    wakeup.to_dict()
    assert hash(wakeup) == h
    assert {wakeup: 1}[wakeup] == 1
    cls = _ring.event_class(wakeup)
    same = _ring.make_event(cls, 767594114000, 8743, 8744, 3, wakeup_raw())
    assert hash(same) == h                 # same time, cpu, tid and selector
    others = [_ring.make_event(cls, 767594114001, 8743, 8744, 3, wakeup_raw()),
              _ring.make_event(cls, 767594114000, 8743, 8745, 3, wakeup_raw()),
              _ring.make_event(cls, 767594114000, 8743, 8744, 2, wakeup_raw())]
    assert all(hash(o) != h for o in others)


def test_missing_field_is_named(wakeup):
    with pytest.raises(AttributeError) as info:
        wakeup.nope
    assert str(info.value) == "sched:sched_wakeup event has no field 'nope'"
    with pytest.raises(KeyError) as kinfo:
        wakeup["nope"]
    assert kinfo.value.args == ("nope",)
    with pytest.raises(KeyError):
        wakeup[0]


def test_names_built_at_run_time_find_the_same_fields(wakeup):
    # Interned names are found by identity; equal strings that are not the same object must
    # still reach the same fields (getattr, [], get, in) and miss the same way.
    pid, comm, nope = "".join(["pi", "d"]), "".join(["co", "mm"]), "".join(["no", "pe"])
    assert pid is not "pid"  # noqa: F632 -- the point of the test
    assert (getattr(wakeup, pid), wakeup[comm], wakeup.get(pid), pid in wakeup) == (8738, "bash", 8738, True)
    assert getattr(wakeup, "".join(["_ti", "me"])) == 767594114000
    assert nope not in wakeup and wakeup.get(nope, 5) == 5
    with pytest.raises(AttributeError, match="has no field 'nope'"):
        getattr(wakeup, nope)


def test_every_field_of_a_wide_event_is_found():
    # More names than the smallest identity table holds: every one still maps to its own field.
    names = [f"f{i}" for i in range(40)]
    cls = _ring.EventClass("x:wide", None, [(n, _ring.FIELD_INT, 4 * i, 4, False) for i, n in enumerate(names)])
    ev = _ring.make_event(cls, 1, 2, 3, 0, struct.pack("<40I", *range(1000, 1040)))
    assert [getattr(ev, n) for n in names] == list(range(1000, 1040))
    assert [ev["".join(["f", str(i)])] for i in range(40)] == list(range(1000, 1040))
    assert ev._pid == 2 and len(ev) == 48


def test_a_repeated_field_name_resolves_as_the_index_does():
    cls = _ring.EventClass("x:dup", None, [("a", _ring.FIELD_INT, 0, 4, False), ("a", _ring.FIELD_INT, 4, 4, False)])
    ev = _ring.make_event(cls, 1, 2, 3, 0, struct.pack("<II", 7, 9))
    assert ev.a == ev["".join(["", "a"])] == 9


def test_non_string_key_error_carries_the_key(wakeup):
    with pytest.raises(KeyError) as info:
        wakeup[0]
    assert info.value.args == (0,)


def test_methods_still_reachable(wakeup):
    # fields are found first, then the type's own attributes
    assert callable(wakeup.to_dict) and callable(wakeup.print)
    assert wakeup.__class__ is ebpfprof.PerfEvent


def test_fields_cannot_be_assigned(wakeup):
    with pytest.raises(AttributeError):
        wakeup.pid = 1
    assert wakeup.pid == 8738


def test_users_cannot_construct_one():
    with pytest.raises(TypeError, match="cannot create 'ebpfprof.PerfEvent' instances"):
        ebpfprof.PerfEvent()
    with pytest.raises(TypeError):
        object.__new__(ebpfprof.PerfEvent)
    assert ebpfprof.PerfEvent is _ring.PerfEvent


def test_pickle_gives_the_plain_dict(wakeup):
    import pickle

    assert pickle.loads(pickle.dumps(wakeup)) == wakeup.to_dict()


def test_event_owns_its_bytes():
    fmt = fixture_format("sched_sched_wakeup")
    buf = bytearray(wakeup_raw())
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, buf)
    buf[8:24] = b"X" * 16
    struct.pack_into("<i", buf, 24, -5)
    assert (ev.comm, ev.pid) == ("bash", 8738)
    assert _ring.event_raw(ev) == wakeup_raw()


def test_event_outlives_its_class_reference():
    fmt = fixture_format("sched_sched_wakeup")
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, wakeup_raw())
    gc.collect()
    assert ev._event == "sched:sched_wakeup" and ev.comm == "bash"


# -- decoding ---------------------------------------------------------------------------------

def test_negative_and_unsigned_integers():
    fmt = fixture_format("sched_sched_wakeup")
    raw = wakeup_raw(pid=-2, prio=-2147483648, target_cpu=2147483647, common_pid=-1, flags=0xFF, preempt=0xFF)
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, raw)
    assert (ev.pid, ev.prio, ev.target_cpu) == (-2, -2147483648, 2147483647)
    assert (ev.common_pid, ev.common_flags, ev.common_preempt_count) == (-1, 255, 255)


def test_eight_byte_integers():
    fmt = fixture_format("timer_hrtimer_start")
    raw = common(460) + struct.pack("<QQqqI?", 0xFFFF888812345678, 0xFFFFFFFF81000000, -1,
                                    -(1 << 63), 0xFFFFFFFF, True)
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, raw)
    assert ev.hrtimer == 0xFFFF888812345678 and ev.function == 0xFFFFFFFF81000000
    assert ev.expires == -1 and ev.softexpires == -(1 << 63)
    assert ev.mode == 0xFFFFFFFF
    assert ev.was_armed == 1


def test_one_and_two_byte_integers():
    fmt = fixture_format("bridge_br_fdb_add")
    raw = common(2258) + struct.pack("<B3xI6sHH", 0xFE, 0, b"\x00\x11\x22\x33\x44\x55", 0xFFFF, 0x8001)
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, raw)
    assert (ev.ndm_flags, ev.vid, ev.nlh_flags) == (0xFE, 0xFFFF, 0x8001)
    short = fixture_format("oom_oom_score_adj_update")
    raw = common(611) + struct.pack("<i16sh", 42, b"oom\0", -1000)
    ev = _ring.make_event(event_class(short), 1, 2, 3, 0, raw)
    assert (ev.pid, ev.comm, ev.oom_score_adj) == (42, "oom", -1000)


def test_signed_byte():
    fmt = parse_format("name: t\nID: 9\nformat:\n"
                       "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
                       "\tfield:s8 a;\toffset:8;\tsize:1;\tsigned:1;\n"
                       "\tfield:u8 b;\toffset:9;\tsize:1;\tsigned:0;\n"
                       "\tfield:s16 c;\toffset:10;\tsize:2;\tsigned:1;\n", "t")
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, struct.pack("<H6xbBh", 9, -128, 255, -32768))
    assert (ev.a, ev.b, ev.c) == (-128, 255, -32768)


def test_char_array_string():
    fmt = fixture_format("sched_sched_switch")
    raw = common(372) + struct.pack("<16siiq16sii", b"a" * 16, 1, 2, 0x401, b"next\0junk", 3, 4)
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, raw)
    assert ev.prev_comm == "a" * 16           # all 16 bytes used: no NUL, still bounded
    assert ev.next_comm == "next"             # stops at the NUL
    assert ev.prev_state == 0x401
    assert type(ev.prev_comm) is str


def test_non_utf8_bytes_are_escaped_not_fatal():
    fmt = fixture_format("sched_sched_wakeup")
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, wakeup_raw(comm=b"\xff\xfeok\xc3"))
    assert ev.comm == "\\xff\\xfeok\\xc3"
    assert ev.comm.encode() == b"\\xff\\xfeok\\xc3"


def exec_raw(filename: bytes, loc: int | None = None, pid=10, old_pid=11) -> bytes:
    if loc is None:
        loc = (len(filename) << 16) | 20
    return common(365) + struct.pack("<Iii", loc, pid, old_pid) + filename


@pytest.fixture
def exec_cls():
    return event_class(fixture_format("sched_sched_process_exec"))


def test_data_loc_string(exec_cls):
    ev = _ring.make_event(exec_cls, 1, 2, 3, 0, exec_raw(b"/usr/bin/ls\0"))
    assert (ev.filename, ev.pid, ev.old_pid) == ("/usr/bin/ls", 10, 11)
    assert ev.to_dict()["filename"] == "/usr/bin/ls"


def test_data_loc_string_without_nul_uses_its_length(exec_cls):
    ev = _ring.make_event(exec_cls, 1, 2, 3, 0, exec_raw(b"abcdef", loc=(3 << 16) | 20))
    assert ev.filename == "abc"


def test_data_loc_truncated_payload_is_cut_at_the_record_end(exec_cls):
    # The kernel side keeps at most 4 KB: a locator may claim more than the record holds.
    ev = _ring.make_event(exec_cls, 1, 2, 3, 0, exec_raw(b"/usr/bin/ls", loc=(4000 << 16) | 20))
    assert ev.filename == "/usr/bin/ls"


@pytest.mark.parametrize("loc", [(4 << 16) | 0xFFFF, (0xFFFF << 16) | 0xFFFF, (0 << 16) | 20, (1 << 16) | 31])
def test_data_loc_out_of_range_gives_empty_string(exec_cls, loc):
    ev = _ring.make_event(exec_cls, 1, 2, 3, 0, exec_raw(b"/usr/bin/ls\0", loc=loc))
    assert ev.filename == ""
    assert ev.pid == 10


def test_record_shorter_than_its_format_does_not_crash(exec_cls):
    ev = _ring.make_event(exec_cls, 1, 2, 3, 0, b"\x6d\x01")
    assert (ev.filename, ev.pid, ev.old_pid, ev.common_pid) == ("", 0, 0, 0)
    assert ev.common_type == 0x016D
    empty = _ring.make_event(exec_cls, 1, 2, 3, 0, b"")
    assert empty.to_dict()["filename"] == "" and empty.common_type == 0
    wake = _ring.make_event(event_class(fixture_format("sched_sched_wakeup")), 1, 2, 3, 0, wakeup_raw()[:20])
    assert (wake.comm, wake.pid) == ("", 0)


def test_data_loc_arrays_and_bytes():
    fmt = fixture_format("dma_dma_map_sg")
    base = 48
    dev = b"nvme0\0\0\0"
    phys = struct.pack("<QQ", 0x1000, 0x2000)
    lengths = struct.pack("<II", 4096, 512)
    fixed = struct.pack("<Iii?3xIIIIQ", (6 << 16) | base, -1, 2, True, (16 << 16) | (base + 8),
                        (0 << 16) | (base + 24), (8 << 16) | (base + 24), 1, (1 << 64) - 1)
    raw = common(431) + fixed + dev + phys + lengths
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, raw)
    assert ev.device == "nvme0"
    assert (ev.full_nents, ev.full_ents, ev.truncated, ev.dir, ev.attrs) == (-1, 2, 1, 1, (1 << 64) - 1)
    assert ev.phys_addrs == phys and type(ev.phys_addrs) is bytes
    assert ev.dma_addrs == b""
    assert ev.lengths == lengths
    assert struct.unpack("<QQ", ev.phys_addrs) == (0x1000, 0x2000)


def test_fixed_byte_array():
    fmt = fixture_format("bridge_br_mdb_full")
    src = bytes(range(16))
    raw = common(2254) + struct.pack("<IiH16s16s6s", (4 << 16) | 56, 10, 7, src, b"\xff" * 16,
                                     b"\x01\x00\x5e\x00\x00\x01") + b"br0\0"
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, raw)
    assert ev.src == src and type(ev.src) is bytes
    assert ev.grp == b"\xff" * 16
    assert ev.grpmac == b"\x01\x00\x5e\x00\x00\x01"
    assert (ev.dev, ev.af, ev.vid) == ("br0", 10, 7)


def test_rel_loc_fields():
    fmt = parse_format("name: r\nID: 9\nformat:\n"
                       "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
                       "\tfield:__rel_loc char[] s;\toffset:8;\tsize:4;\tsigned:0;\n"
                       "\tfield:__rel_loc u8[] b;\toffset:12;\tsize:4;\tsigned:0;\n", "t")
    # __rel_loc offsets count from the end of the locator itself
    raw = struct.pack("<H6x", 9) + struct.pack("<II", (3 << 16) | 4, (2 << 16) | 3) + b"hi\0" + b"\x07\x08"
    #   s: payload at 8 + 4 + 4 = 16 ("hi\0"); b: at 12 + 4 + 3 = 19 (b"\x07\x08")
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, raw)
    assert ev.s == "hi"
    assert ev.b == b"\x07\x08"


def test_odd_sized_member_is_bytes():
    fmt = parse_format("name: o\nID: 9\nformat:\n"
                       "\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n"
                       "\tfield:struct foo f;\toffset:8;\tsize:3;\tsigned:0;\n", "t")
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, struct.pack("<H6x3s", 9, b"abc"))
    assert ev.f == b"abc"


# -- _realtime, _callchain, print ---------------------------------------------------------------

def test_realtime_adds_the_offset(wakeup):
    assert wakeup._realtime == 767594114000
    _ring.set_realtime_offset(1_700_000_000_000_000_000)
    assert wakeup._realtime == 1_700_000_000_000_000_000 + 767594114000
    _ring.set_realtime_offset(-767594114000)
    assert wakeup._realtime == 0
    assert wakeup._time == 767594114000


FRAMES = (CONTEXT_KERNEL, 0xFFFFFFFF81000010, 0xFFFFFFFFC0001004,
          CONTEXT_USER, 0x401020, 0x7F0000001000)


def test_callchain_without_a_resolver_is_empty():
    fmt = fixture_format("sched_sched_wakeup")
    ev = _ring.make_event(event_class(fmt), 1, 2, 3, 0, wakeup_raw(), FRAMES)
    assert ev._callchain == []
    assert _ring.event_frames(ev) == FRAMES


def test_callchain_hook_gets_the_raw_frames_once():
    calls = []

    def resolve(cls, pid, frames, event=None):
        calls.append((cls, pid, frames))
        return [{"addr": f, "n": i} for i, f in enumerate(frames)]

    _ring.set_hooks(resolve_callchain=resolve)
    fmt = fixture_format("sched_sched_wakeup")
    cls = event_class(fmt)
    ev = _ring.make_event(cls, 1, 4242, 4243, 0, wakeup_raw(), FRAMES)
    chain = ev._callchain
    assert chain == [{"addr": f, "n": i} for i, f in enumerate(FRAMES)]
    assert calls == [(cls, 4242, FRAMES)]
    assert ev["_callchain"] is chain and ev.to_dict()["_callchain"] is chain
    assert len(calls) == 1
    # an event without frames does not call the resolver
    plain = _ring.make_event(cls, 1, 2, 3, 0, wakeup_raw())
    assert plain._callchain == [] and len(calls) == 1


def test_callchain_always_asks_for_events_without_frames_and_passes_the_event():
    """A profiler's Python frames come from a side ring: the resolver must be asked even for a
    sample without frames, and needs the event (its cpu, tid, ip, time) to find them."""
    seen = []

    def resolve(cls, pid, frames, event=None):
        seen.append((frames, event))
        return [{"addr": 0, "symbol": "f"}]

    _ring.set_hooks(resolve_callchain=resolve, callchain_always=True)
    try:
        plain = _ring.make_event(event_class(fixture_format("sched_sched_wakeup")), 1, 2, 3, 0, wakeup_raw())
        assert plain._callchain == [{"addr": 0, "symbol": "f"}]
        assert seen == [((), plain)]
    finally:
        _ring.set_hooks(resolve_callchain=resolve)


def test_callchain_hook_error_propagates():
    def resolve(cls, pid, frames, event=None):
        raise RuntimeError("resolver broke")

    _ring.set_hooks(resolve_callchain=resolve)
    ev = _ring.make_event(event_class(fixture_format("sched_sched_wakeup")), 1, 2, 3, 0, wakeup_raw(), FRAMES)
    with pytest.raises(RuntimeError, match="resolver broke"):
        ev._callchain


class _StubUser:
    def __init__(self):
        self.asked = []

    def resolve(self, pid, addr):
        self.asked.append((pid, addr))
        if addr == 0x401020:
            return "main", 0x20, "/usr/bin/prog"
        raise OSError("no symbols")


class _Resolver(CallchainResolver):
    def __init__(self, kernel, user):
        super().__init__()
        self._k, self._u = kernel, user

    kernel = property(lambda self: self._k)
    user = property(lambda self: self._u)


def test_resolved_frames_follow_the_spec(tmp_path):
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("ffffffff81000000 T _stext\n"
                        "ffffffff81000000 T startup_64\n"
                        "ffffffff81000100 t second_fn\n"
                        "ffffffff81000080 D some_data\n"
                        "ffffffffc0001000 t mod_fn\t[mymod]\n"
                        "0000000000000000 T hidden\n")
    kernel = KernelSymbols(str(kallsyms))
    assert len(kernel) == 4
    user = _StubUser()
    _ring.set_hooks(resolve_callchain=_Resolver(kernel, user))
    ev = _ring.make_event(event_class(fixture_format("sched_sched_wakeup")), 1, 77, 78, 0, wakeup_raw(), FRAMES)
    chain = ev._callchain
    assert [f["kernel"] for f in chain] == [True, True, False, False]
    assert chain[0] == {"addr": 0xFFFFFFFF81000010, "symbol": chain[0]["symbol"], "offset": 0x10,
                        "kernel": True, "dso": KERNEL_DSO}
    assert chain[0]["symbol"] in ("_stext", "startup_64")
    assert chain[1] == {"addr": 0xFFFFFFFFC0001004, "symbol": "mod_fn", "offset": 4, "kernel": True,
                        "dso": "[mymod]"}
    assert chain[2] == {"addr": 0x401020, "symbol": "main", "offset": 0x20, "kernel": False,
                        "dso": "/usr/bin/prog"}
    assert chain[3] == {"addr": 0x7F0000001000, "symbol": "Unknown", "offset": 0, "kernel": False,
                        "dso": "[unknown]"}
    assert user.asked == [(77, 0x401020), (77, 0x7F0000001000)]
    assert all(set(f) == {"addr", "symbol", "offset", "kernel", "dso"} for f in chain)


def test_kernel_address_below_every_symbol(tmp_path):
    kallsyms = tmp_path / "kallsyms"
    kallsyms.write_text("ffffffff81000000 T startup_64\n")
    assert KernelSymbols(str(kallsyms)).resolve(0x1000) == ("Unknown", 0, KERNEL_DSO)


def test_print_without_a_printer_raises(wakeup):
    with pytest.raises(RuntimeError, match="no printer installed"):
        wakeup.print()


def test_print_calls_the_printer_with_its_flags(wakeup):
    calls = []
    _ring.set_hooks(print_event=lambda ev, ts, cc: calls.append((ev, ts, cc)))
    wakeup.print()
    wakeup.print(timestamp=False)
    wakeup.print(callchain=False)
    wakeup.print(False, False)
    assert calls == [(wakeup, True, True), (wakeup, False, True), (wakeup, True, False), (wakeup, False, False)]


def test_module_helpers(wakeup):
    assert _ring.event_raw(wakeup) == wakeup_raw()
    assert _ring.event_frames(wakeup) == ()
    cls = _ring.event_class(wakeup)
    assert cls.name == "sched:sched_wakeup"
    assert cls.keys == tuple(wakeup.keys())
    assert cls.info.format.name == "sched_wakeup"
    with pytest.raises(TypeError):
        _ring.event_raw(object())


def test_an_uninitialised_event_class_is_refused_not_a_crash():
    bare = _ring.EventClass.__new__(_ring.EventClass)
    with pytest.raises(TypeError, match="not initialised"):
        _ring.make_event(bare, 1, 2, 3, 0, b"")
    with pytest.raises(TypeError, match="initialised EventClass"):
        _ring.Reader([bare])


def test_a_str_subclass_field_name_reads_the_same_every_way():
    class Name(str):
        pass
    cls = _ring.EventClass("x:sub", None, [(Name("_pid"), _ring.FIELD_INT, 0, 4, False)])
    ev = _ring.make_event(cls, 1, 2, 3, 0, struct.pack("<I", 77))
    assert ev._pid == ev["".join(["_p", "id"])] == ev.to_dict()["_pid"] == 77


def test_reinitialising_a_class_while_its_old_handler_dies_reads_the_new_fields():
    # Dropping the old handler runs its __del__, which reads a field that only the new
    # fields have: the class must already be whole by then.
    ev = None
    seen = []

    class Handler:
        def __call__(self, e):
            pass

        def __del__(self):
            seen.append(ev.f40)

    cls = _ring.EventClass("x:y", Handler(), [("a", _ring.FIELD_INT, 0, 1, False)])
    ev = _ring.make_event(cls, 1, 2, 3, 0, bytes(range(64)))
    cls.__init__("x:y", None, [(f"f{i}", _ring.FIELD_INT, i, 1, False) for i in range(41)])
    assert seen == [40] and ev.f40 == 40


def test_event_class_rejects_bad_field_kinds():
    with pytest.raises(ValueError, match="bad field kind 99"):
        _ring.EventClass("x:y", None, [("a", 99, 0, 4, False)])


# -- the reader: events kept after their handler stay valid ---------------------------------------

PAGE = os.sysconf("SC_PAGESIZE")
HEADER = struct.Struct("<QIIIHHII")     # bpf/ep_sample.h struct ep_sample


def test_the_fake_ring_writes_the_header_the_reader_compiled():
    values = [0x1122334455667788, 2, 3, 4, 5, 6, 7, 8]
    packed = HEADER.pack(*values)
    assert HEADER.size == _ring.SAMPLE_HEADER_SIZE
    codes = {1: "B", 2: "H", 4: "I", 8: "Q"}
    assert [struct.unpack_from("<" + codes[size], packed, off)[0] for _, off, size in _ring.SAMPLE_LAYOUT] == values


class FakeRing:
    """A memfd laid out like a BPF ring buffer map: consumer page, producer page, data."""

    def __init__(self, data_size: int = 1 << 16) -> None:
        self.data_size = data_size
        self.fd = os.memfd_create("ebpfprof-test-ring")
        os.ftruncate(self.fd, 2 * PAGE + 2 * data_size)
        self.map = mmap.mmap(self.fd, 2 * PAGE + 2 * data_size)
        self.producer = 0

    def push(self, time, pid, tid, cpu, selector, raw, frames=(), lost=0, raw_size=None):
        size = len(raw) if raw_size is None else raw_size      # raw_size: to forge damage
        rec = HEADER.pack(time, pid, tid, cpu, selector, len(frames), lost, size) + raw
        if frames:
            rec += b"\0" * (-len(raw) % 8) + struct.pack(f"<{len(frames)}Q", *frames)
        start = 2 * PAGE + self.producer
        self.map[start:start + 8 + len(rec)] = struct.pack("<II", len(rec), 0) + rec
        self.producer += (8 + len(rec) + 7) & ~7
        self.map[PAGE:PAGE + 8] = struct.pack("<Q", self.producer)

    @property
    def consumer(self) -> int:
        return struct.unpack("<Q", self.map[0:8])[0]

    def scribble(self) -> None:
        self.map[2 * PAGE:2 * PAGE + self.producer] = b"\xee" * self.producer

    def close(self) -> None:
        self.map.close()
        os.close(self.fd)


def test_events_kept_by_a_handler_survive_the_ring_reuse():
    fmt = fixture_format("sched_sched_wakeup")
    kept = []
    cls = event_class(fmt, handler=kept.append)
    ring = FakeRing()
    reader = _ring.Reader([cls])
    try:
        reader.add_bpf_ring(ring.fd, ring.data_size)
        for i in range(3):
            ring.push(1000 + i, 10, 20 + i, i, 0, wakeup_raw(comm=b"c%d" % i, pid=100 + i), frames=(CONTEXT_KERNEL, 0xFFFFFFFF81000000 + i))
        assert reader.drain() == 3
        assert ring.consumer == ring.producer
        ring.scribble()                       # the kernel reuses the space
        gc.collect()
        assert [(e.comm, e.pid, e._tid, e._cpu, e._time) for e in kept] == [
            ("c0", 100, 20, 0, 1000), ("c1", 101, 21, 1, 1001), ("c2", 102, 22, 2, 1002)]
        assert [_ring.event_frames(e) for e in kept] == [(CONTEXT_KERNEL, 0xFFFFFFFF81000000 + i) for i in range(3)]
        assert (reader.delivered, reader.records, cls.delivered) == (3, 3, 3)
    finally:
        reader.close()
        ring.close()
    assert kept[1].to_dict()["comm"] == "c1"   # and after the reader is gone


@contextlib.contextmanager
def reading(classes, nr_rings=1, data_size=1 << 16, lost_handler=None):
    """A Reader over fresh FakeRings; both are closed on the way out."""
    rings = [FakeRing(data_size) for _ in range(nr_rings)]
    reader = _ring.Reader(classes, lost_handler)
    try:
        for ring in rings:
            reader.add_bpf_ring(ring.fd, ring.data_size)
        yield reader, rings
    finally:
        reader.close()
        for ring in rings:
            ring.close()


def test_records_over_dirty_ring_space_decode_like_fresh_ones():
    # The reader copies records in whole words: bytes past raw_size in a reused ring (here 0xee)
    # must not reach the event. Same record, clean ring vs scribbled ring: same event.
    fmt = fixture_format("sched_sched_wakeup")
    raws = [wakeup_raw(comm=b"c%d" % i)[:n] for i, n in enumerate((25, 30, 33, 37))]

    def read(dirty: bool):
        kept = []
        with reading([event_class(fmt, handler=kept.append)]) as (reader, (ring,)):
            if dirty:
                ring.map[2 * PAGE:3 * PAGE] = b"\xee" * PAGE
            for i, raw in enumerate(raws):
                ring.push(100 + i, 1, 2, 0, 0, raw)
            reader.drain()
        return [(_ring.event_raw(e), e.to_dict()) for e in kept]

    clean, dirty = read(False), read(True)
    assert [r for r, _ in clean] == raws
    assert dirty == clean


@pytest.mark.parametrize("raw_size", [0xFFFFFFF9, 0xFFFFFFFF, 1 << 20])
def test_a_record_claiming_more_raw_bytes_than_it_has_is_skipped(raw_size):
    # raw_size + 7 must not wrap in 32 bits and pass the length check (it crashed once).
    seen = []
    with reading([event_class(fixture_format("sched_sched_wakeup"), handler=seen.append)]) as (reader, (ring,)):
        ring.push(1, 2, 3, 0, 0, b"", frames=(1, 2), raw_size=raw_size)
        ring.push(2, 2, 3, 0, 0, wakeup_raw())
        assert reader.drain() == 2
        assert (reader.records, [e._time for e in seen]) == (1, [2])


def test_handlers_cannot_pull_the_ring_from_under_the_drain():
    errors = []

    def handler(event):
        for call in (reader.drain, reader.discard, reader.close, lambda: reader.add_bpf_ring(ring.fd, ring.data_size)):
            try:
                call()
            except RuntimeError as e:
                errors.append(str(e))

    with reading([event_class(fixture_format("sched_sched_wakeup"), handler=handler)]) as (reader, (ring,)):
        ring.push(1, 2, 3, 0, 0, wakeup_raw())
        ring.push(2, 2, 3, 0, 0, wakeup_raw())
        assert reader.drain() == 2
        assert len(errors) == 8 and all("while it drains" in e for e in errors)
        assert reader.drain() == 0          # and the reader still works afterwards


def test_a_handler_replaced_from_inside_takes_over_at_the_next_event():
    # The reader also holds the running handler, in case the replacement dropped its last reference.
    calls = []

    class Once:
        def __call__(self, event):
            _ring.event_class(event).handler = calls.append   # drops the last reference to self
            calls.append(self.tag)

    first = Once()
    first.tag = "first"
    cls = event_class(fixture_format("sched_sched_wakeup"), handler=first)
    del first
    with reading([cls]) as (reader, (ring,)):
        ring.push(1, 2, 3, 0, 0, wakeup_raw())
        ring.push(2, 2, 3, 0, 0, wakeup_raw())
        reader.drain()
        assert calls[0] == "first" and len(calls) == 2 and calls[1]._time == 2


# -- the reader with --order: per-ring queues, merged -------------------------------------------

@contextlib.contextmanager
def reading_in_order(nr_rings=1, data_size=1 << 16):
    """reading() with one class; events and __lost__ calls land, in order, in one list."""
    seen = []
    cls = event_class(fixture_format("sched_sched_wakeup"), handler=lambda e: seen.append((e._time, e._tid)))
    with reading([cls], nr_rings, data_size, lambda start, end: seen.append(("lost", start, end))) as (reader, rings):
        yield reader, rings, seen


def test_order_sorts_a_ring_and_keeps_arrival_order_on_ties():
    with reading_in_order() as (reader, (ring,), seen):
        for t, tid in ((50, 1), (30, 2), (40, 3), (30, 4), (10, 5), (60, 6), (30, 7)):
            ring.push(t, 1, tid, 0, 0, wakeup_raw())
        reader.drain(ordered=True, horizon=35)
        assert seen == [(10, 5), (30, 2), (30, 4), (30, 7)] and reader.pending == 3
        reader.drain(ordered=True, flush=True)
        assert seen[4:] == [(40, 3), (50, 1), (60, 6)] and reader.pending == 0


def test_order_merges_rings():
    with reading_in_order(nr_rings=3) as (reader, rings, seen):
        for i in range(60):                   # ring i % 3 gets times i, in order per ring
            rings[i % 3].push(1000 + i, 1, i, 0, 0, wakeup_raw())
        reader.drain(ordered=True, flush=True)
        assert [t for t, _ in seen] == list(range(1000, 1060))


def test_order_merges_many_rings_with_ties_in_arrival_order():
    # Eight rings, each in time order, times shared across rings and repeated within one, in
    # rounds with a horizon: the merge (a heap of the rings' heads) gives every entry in
    # (time, arrival) order, arrival being ring by ring, then push order, within one drain.
    rnd = random.Random(11)
    with reading_in_order(nr_rings=8) as (reader, rings, seen):
        expected, tid = [], 0
        for round_ in range(5):
            arrivals = []
            for ring in rings:
                t = 100 * round_
                for _ in range(rnd.randrange(0, 40)):
                    t += rnd.choice((0, 0, 1, 3))
                    tid += 1
                    ring.push(t, 1, tid, 0, 0, wakeup_raw())
                    arrivals.append((t, tid))
            expected += arrivals
            horizon = 100 * round_ + 50
            reader.drain(ordered=True, horizon=horizon)
            in_order = sorted(expected, key=lambda e: e[0])       # stable: ties keep arrival
            assert seen == [e for e in in_order if e[0] <= horizon]
            assert reader.pending == len(expected) - len(seen)
        reader.drain(ordered=True, flush=True)
        assert seen == sorted(expected, key=lambda e: e[0]) and reader.pending == 0


def test_order_queue_grows_and_wraps_without_losing_order():
    # More entries than the first allocation (4096), pushed and partly delivered in rounds so
    # the queue's head has moved when it grows; times arrive shuffled within small windows.
    rnd = random.Random(7)
    with reading_in_order(data_size=1 << 22) as (reader, (ring,), seen):
        t = 0
        for _ in range(4):
            times = [t + i for i in range(3000)]
            for lo in range(0, len(times), 8):
                window = times[lo:lo + 8]
                rnd.shuffle(window)
                times[lo:lo + 8] = window
            for x in times:
                ring.push(x, 1, 1, 0, 0, wakeup_raw())
            t += 3000
            reader.drain(ordered=True, horizon=t - 2000)   # leaves 2000 waiting each round
        reader.drain(ordered=True, flush=True)
        got = [x for x, _ in seen]
        assert got == sorted(got) and len(got) == 12000 and len(set(got)) == 12000


def test_order_puts_a_loss_between_the_events_around_it():
    with reading_in_order() as (reader, (ring,), seen):
        ring.push(10, 1, 1, 0, 0, wakeup_raw())
        ring.push(20, 1, 2, 0, 0, wakeup_raw(), lost=3)      # 3 lost on CPU 0 between 10 and 20
        ring.push(15, 1, 3, 1, 0, wakeup_raw())              # CPU 1, in between
        reader.drain(ordered=True, flush=True)
        assert seen == [(10, 1), (15, 3), ("lost", 10, 20), (20, 2)] and reader.lost == 3


def test_reader_routes_by_selector_and_counts_drops():
    fmt = fixture_format("sched_sched_wakeup")
    seen = []
    with_handler = event_class(fmt, "sched:a", handler=lambda e: seen.append(e._event))
    without = event_class(fmt, "sched:b", handler=None)
    ring = FakeRing()
    reader = _ring.Reader([with_handler, without])
    try:
        reader.add_bpf_ring(ring.fd, ring.data_size)
        ring.push(1, 1, 1, 0, 0, wakeup_raw())
        ring.push(2, 1, 1, 0, 1, wakeup_raw())
        ring.push(3, 1, 1, 0, 7, wakeup_raw())     # no such selector: skipped, not misdecoded
        reader.drain()
        assert seen == ["sched:a"]
        assert (with_handler.delivered, without.dropped, reader.delivered) == (1, 1, 1)
    finally:
        reader.close()
        ring.close()


# -- discard(): what is left at the end is counted, not thrown away ---------------------------

def test_discard_counts_what_the_rings_still_hold_as_lost():
    fmt = fixture_format("sched_sched_wakeup")
    seen, lost_calls = [], []
    with_handler = event_class(fmt, "sched:a", handler=seen.append)
    without = event_class(fmt, "sched:b", handler=None)
    with reading([with_handler, without], nr_rings=2, lost_handler=lambda s, e: lost_calls.append((s, e))) as (
            reader, rings):
        rings[0].push(1, 1, 1, 0, 0, wakeup_raw())
        rings[0].push(2, 1, 1, 0, 0, wakeup_raw(), lost=3)     # 3 lost before it
        rings[1].push(3, 1, 1, 1, 1, wakeup_raw(), lost=2)     # no handler: dropped, its 2 losses count
        rings[1].push(4, 1, 1, 1, 7, wakeup_raw(), lost=50)    # no such selector: skipped, uncounted
        rings[1].push(5, 1, 1, 1, 0, wakeup_raw())
        reader.stop()                                          # a second Ctrl-C
        assert reader.drain() == 0 and reader.lost == 0
        assert reader.discard() == 3
        assert (reader.lost, reader.records, reader.delivered) == (3 + 3 + 2, 4, 0)
        assert (with_handler.delivered, without.dropped) == (0, 1)
        assert seen == [] and lost_calls == []                 # nothing delivered, no Python run
        assert [r.consumer for r in rings] == [r.producer for r in rings]
        assert reader.discard() == 0 and reader.lost == 8      # nothing left


def test_report_lost_counts_and_calls_lost_like_in_stream_losses():
    fmt = fixture_format("sched_sched_wakeup")
    lost_calls = []
    with reading([event_class(fmt, "sched:a", handler=None)], nr_rings=1,
                 lost_handler=lambda s, e: lost_calls.append((s, e))) as (reader, rings):
        reader.report_lost(0)                                  # nothing: no call
        reader.report_lost(5, 10, 20)
        reader.report_lost(2)
        assert reader.lost == 7
        assert lost_calls == [(10, 20), (0, 0)]


def test_discard_counts_the_order_queues_and_their_loss_markers():
    with reading_in_order(nr_rings=2) as (reader, rings, seen):
        rings[0].push(10, 1, 1, 0, 0, wakeup_raw())
        rings[0].push(20, 1, 2, 0, 0, wakeup_raw(), lost=4)   # queued: a loss marker, then the event
        rings[1].push(30, 1, 3, 1, 0, wakeup_raw())
        reader.drain(ordered=True, horizon=5)                 # nothing is old enough yet
        assert seen == [] and reader.pending == 4 and reader.lost == 0
        rings[1].push(40, 1, 4, 1, 0, wakeup_raw(), lost=1)   # still in the ring
        assert reader.discard() == 3 + 1
        assert (reader.lost, reader.pending, reader.delivered) == (3 + 4 + 1 + 1, 0, 0)
        assert seen == []
        reader.drain(ordered=True, flush=True)
        assert seen == [] and reader.discard() == 0


def test_discard_takes_every_record_not_one_drain_s_worth():
    # More records than a signal-check period, with the budget spent: discard takes them all.
    with reading([event_class(fixture_format("sched_sched_wakeup"), handler=lambda e: None)],
                 data_size=1 << 20) as (reader, (ring,)):
        for i in range(3000):
            ring.push(i, 1, 1, 0, 0, wakeup_raw(), lost=i % 2)
        reader.budget = 0
        assert reader.drain() == 0
        assert reader.discard() == 3000 and reader.lost == 3000 + 1500
        assert ring.consumer == ring.producer

