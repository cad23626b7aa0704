"""`help` (SPEC §6): the template is valid Python, has every callback, one handler per selector,
lists the fields with their Python types, and its header holds the command line that runs it.

Selectors are resolved by the real resolver, with fixture formats standing in for tracefs. One test runs the template's
callbacks on made events to show it works as written; tests/kernel/test_template_live.py runs it
on live events.
"""
from __future__ import annotations

import contextlib
import inspect
import io
import re
import shlex
import struct
from pathlib import Path
from unittest import mock

import pytest

import support

from ebpfprof import _ring
from ebpfprof.resolve.spec import handler_name
from ebpfprof.lang.selector.parser import parse_selectors
from ebpfprof.kernel import tracefs
from ebpfprof.options import RunConfig
from ebpfprof.resolve import resolve_selectors
from ebpfprof.run.events import field_specs
from ebpfprof.output.template import script_template

fixture_format = support.fixture_format

CALLBACKS = {
    "__init__": [],
    "__exit__": [],
    "__interval__": [],
    "__print_stat__": ["indent"],
    "__lost__": ["lost_start", "lost_end"],
    "__sample__": ["event"],
}


def resolve(events: str, formats: list[str]) -> list:
    """What resolve_selectors gives, with fixture formats standing in for tracefs."""
    fixtures = iter(formats)

    def expand(system, name):
        return [(system, name)]

    def read_format(system, name):
        return fixture_format(next(fixtures))

    with mock.patch.object(tracefs, "expand_tracepoint", expand), \
            mock.patch.object(tracefs, "read_format", read_format), \
            mock.patch("ebpfprof.resolve.online_cpus", lambda: tuple(range(128))):
        return [spec.event for spec in resolve_selectors((events,), RunConfig(events=(events,)))]


def template(events: str, formats: list[str], options: list[str] | None = None) -> str:
    return script_template((events,), resolve(events, formats), options)


def load(text: str) -> dict:
    namespace: dict = {"__name__": "template_under_test"}
    exec(compile(text, "template.py", "exec"), namespace)
    return namespace


def handlers(text: str) -> list[str]:
    return re.findall(r"^def (\w+)\(event\):$", text, re.M)


def fields_listed(text: str, handler: str) -> list[tuple[str, str, str]]:
    """(name, python type, C type) from the handler's docstring."""
    body = text.split(f"def {handler}(event):", 1)[1].split('"""', 2)[1]
    return [(m.group(1), m.group(2), m.group(3).strip())
            for m in re.finditer(r"^ {8}(\S+)\s+: (\w+)\s+# (.*)$", body, re.M)]


def header_command(text: str) -> list[str]:
    first = text.splitlines()[0]
    assert first.startswith("#!/usr/bin/env -S ")
    return shlex.split(first[len("#!/usr/bin/env -S "):])


def test_single_selector_template():
    text = template("sched:sched_wakeup", ["sched_sched_wakeup"])
    ns = load(text)
    for name, params in CALLBACKS.items():
        assert callable(ns[name]), name
        assert list(inspect.signature(ns[name]).parameters) == params, name
    assert handlers(text) == ["sched__sched_wakeup", "__sample__"]
    assert list(inspect.signature(ns["sched__sched_wakeup"]).parameters) == ["event"]
    assert fields_listed(text, "sched__sched_wakeup") == [
        ("comm", "str", "char[16]"),
        ("pid", "int", "pid_t"),
        ("prio", "int", "int"),
        ("target_cpu", "int", "int"),
        ("common_*", "int", "common_type, common_flags, common_preempt_count, common_pid"),
    ]


def test_every_callback_has_a_one_line_comment():
    ns = load(template("sched:sched_wakeup", ["sched_sched_wakeup"]))
    for name in CALLBACKS:
        doc = inspect.getdoc(ns[name])
        assert doc and doc.splitlines()[0].strip(), name


def test_header_holds_the_command_line():
    events = "sched:sched_wakeup,sched:sched_process_exec"
    text = template(events, ["sched_sched_wakeup", "sched_sched_process_exec"], ["-i", "1000", "--order"])
    assert header_command(text) == ["ebpfprof", "python", "-e", events, "-i", "1000", "--order"]
    run_line = next(l for l in text.splitlines() if l.startswith("#   ebpfprof "))
    assert shlex.split(run_line[len("#   "):]) == ["ebpfprof", "python", "-e", events, "-i", "1000", "--order",
                                                  "THIS_FILE.py"]


def test_field_types_of_every_kind():
    text = template("dma:dma_map_sg,bridge:br_mdb_full",
                    ["dma_dma_map_sg", "bridge_br_mdb_full"])
    dma = {n: (t, c) for n, t, c in fields_listed(text, "dma__dma_map_sg")}
    assert dma["device"] == ("str", "__data_loc char[]")
    assert dma["phys_addrs"] == ("bytes", "__data_loc u64[]")
    assert dma["truncated"] == ("int", "bool")
    assert dma["attrs"] == ("int", "unsigned long")
    br = {n: (t, c) for n, t, c in fields_listed(text, "bridge__br_mdb_full")}
    assert br["src"] == ("bytes", "__u8[16]")
    assert br["dev"] == ("str", "__data_loc char[]")
    assert br["vid"] == ("int", "u16")
    load(text)


def test_one_handler_per_selector_and_alias():
    events = ("sched:sched_wakeup//alias=w1/,sched:sched_wakeup//alias=w2/,sched:sched_switch,"
              "syscalls:sys_enter_getppid//alias=gp.x-y/")
    text = template(events, ["sched_sched_wakeup", "sched_sched_wakeup", "sched_sched_switch",
                             "syscalls_sys_enter_getppid"])
    assert handlers(text) == ["sched__w1", "sched__w2", "sched__sched_switch", "syscalls__gp_x_y", "__sample__"]
    assert "Handler for sched:sched_wakeup (alias w1)." in text
    load(text)


def test_two_selectors_with_one_alias_share_one_handler():
    events = "sched:sched_wakeup/pid>1/alias=w/,sched:sched_wakeup/pid<1/alias=w/"
    text = template(events, ["sched_sched_wakeup", "sched_sched_wakeup"])
    assert handlers(text) == ["sched__w", "__sample__"]
    load(text)


@pytest.mark.parametrize("events", [
    'sched:sched_process_exec/filename~"*{x}\'"/',
    "sched:sched_process_exec/filename==\"a\\\"b\"/",
    'sched:sched_process_exec/filename=="}}{{\\n\\"\\"\\""/',
    "sched:sched_process_exec/filename==\"'''\"/",
    'sched:sched_process_exec/filename=="$HOME `id` #x"/',
])
def test_quotes_and_braces_do_not_break_the_python(events):
    text = template(events, ["sched_sched_process_exec"])
    ns = load(text)
    assert handlers(text) == ["sched__sched_process_exec", "__sample__"]
    assert header_command(text)[3] == events
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns["__init__"]()
    assert out.getvalue() == f"tracing {events} ... Ctrl-C to stop\n"


def test_newline_in_the_selector_stays_out_of_the_code():
    events = "sched:sched_process_exec/filename==\"x\"\n&& pid>1/"
    text = template(events, ["sched_sched_process_exec"])
    load(text)
    assert text.splitlines()[0].startswith("#!/usr/bin/env -S ebpfprof python -e ")
    assert all(line.startswith("#") for line in text.splitlines()[:6])


def test_header_keeps_spaces_inside_a_filter_string():
    events = 'sched:sched_wakeup/comm=="a  b"/'
    text = template(events, ["sched_sched_wakeup"])
    assert header_command(text)[3] == events


def wakeup_event(name: str = "sched:sched_wakeup"):
    fmt = fixture_format("sched_sched_wakeup")
    cls = _ring.EventClass(name, None, field_specs(fmt), support.event_spec(fmt))
    raw = struct.pack("<HBBi16siii", 374, 0, 0, 1, b"bash", 2, 120, 0)
    return _ring.make_event(cls, 1, 2, 3, 0, raw)


def test_the_template_runs_as_written():
    text = template("sched:sched_wakeup//alias=w/,sched:sched_switch",
                    ["sched_sched_wakeup", "sched_sched_switch"], ["-i", "100"])
    ns = load(text)
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ns["__init__"]()
        for _ in range(3):
            ns["sched__w"](wakeup_event("sched:w"))
        ns["__sample__"](wakeup_event("other:thing"))
        ns["__interval__"]()
        ns["__print_stat__"](2)
        ns["__lost__"](10, 20)
        ns["__exit__"]()
    assert out.getvalue().splitlines()[1:] == [
        "interval 1: 4 events so far",
        "  script: 4 events",
        "lost events between 10 and 20",
        "other:thing: 1 events",
        "sched:w: 3 events",
    ]
