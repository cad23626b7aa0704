"""docs/filters.md is exercised: every filter in a ```sh block compiles, and every ```console block
showing an error is exactly what the compiler prints."""
from __future__ import annotations

import re

import pytest

from ebpfprof.lang.filter import FilterError, compile_filter
from ebpfprof.kernel.event_format import EventFormat, parse_format
from ebpfprof.lang.selector.parser import parse_selectors
from test_filter_gen import FORMATS, ROOT

DOC = ROOT / "docs" / "filters.md"

# Formats the doc uses that tests/fixtures lacks, captured from this kernel's tracefs.
EXTRA_FORMATS = {
    "qdisc:qdisc_dequeue": """\
name: qdisc_dequeue
ID: 2263
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:struct Qdisc * qdisc;\toffset:8;\tsize:8;\tsigned:0;
\tfield:const struct netdev_queue * txq;\toffset:16;\tsize:8;\tsigned:0;
\tfield:int packets;\toffset:24;\tsize:4;\tsigned:1;
\tfield:void * skbaddr;\toffset:32;\tsize:8;\tsigned:0;
\tfield:int ifindex;\toffset:40;\tsize:4;\tsigned:1;
\tfield:u32 handle;\toffset:44;\tsize:4;\tsigned:0;
\tfield:u32 parent;\toffset:48;\tsize:4;\tsigned:0;
\tfield:unsigned long txq_state;\toffset:56;\tsize:8;\tsigned:0;

print fmt: "dequeue ifindex=%d", REC->ifindex
""",
    "fib:fib_table_lookup": """\
name: fib_table_lookup
ID: 2264
format:
\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;
\tfield:unsigned char common_flags;\toffset:2;\tsize:1;\tsigned:0;
\tfield:unsigned char common_preempt_count;\toffset:3;\tsize:1;\tsigned:0;
\tfield:int common_pid;\toffset:4;\tsize:4;\tsigned:1;

\tfield:u32 tb_id;\toffset:8;\tsize:4;\tsigned:0;
\tfield:int err;\toffset:12;\tsize:4;\tsigned:1;
\tfield:int oif;\toffset:16;\tsize:4;\tsigned:1;
\tfield:int iif;\toffset:20;\tsize:4;\tsigned:1;
\tfield:u8 proto;\toffset:24;\tsize:1;\tsigned:0;
\tfield:char name[16];\toffset:60;\tsize:16;\tsigned:0;

print fmt: "table %u oif %d iif %d", REC->tb_id, REC->oif, REC->iif
""",
}

INTERFACES = {"lo": 1, "eth0": 2}


def event_format(event: str) -> EventFormat:
    if event in EXTRA_FORMATS:
        return parse_format(EXTRA_FORMATS[event], event.split(":")[0])
    system, name = event.split(":")
    return parse_format((FORMATS / f"{system}_{name}.format").read_text(), system)


def blocks(kind: str) -> list[str]:
    text = DOC.read_text()
    return [m.group(1) for m in re.finditer(rf"^ *```{kind}\n(.*?)^ *```$", text, re.M | re.S)]


def dedent_block(block: str) -> list[str]:
    lines = block.splitlines()
    indent = min((len(l) - len(l.lstrip(" ")) for l in lines if l.strip()), default=0)
    return [l[indent:] for l in lines]


def selector_of(line: str) -> tuple[str, str]:
    """(event, filter) of the ``-e '...'`` on a command line: the filter runs from the first '/'
    to the last, as the real selector parser splits it."""
    m = re.search(r"-e '([^']*)'", line)
    assert m, line
    (sel,) = parse_selectors(m.group(1))
    assert sel.filter and not sel.attrs, m.group(1)
    return f"{sel.system}:{sel.name}", sel.filter


def compile_example(event: str, text: str):
    return compile_filter(text, event_format(event), selector=event, fn_name="doc",
                          ifindex_resolver=INTERFACES.get)


SH_EXAMPLES = [selector_of(line) for b in blocks("sh") for line in dedent_block(b)
               if "-e '" in line]
CONSOLE = [dedent_block(b) for b in blocks("console")]
ERROR_EXAMPLES = [b for b in CONSOLE if b[0].startswith("$ ebpfprof ")]


def test_the_doc_has_examples():
    assert len(SH_EXAMPLES) >= 15 and len(ERROR_EXAMPLES) >= 10


@pytest.mark.parametrize("event, text", SH_EXAMPLES, ids=[t for _, t in SH_EXAMPLES])
def test_example_compiles(event, text):
    compile_example(event, text)


@pytest.mark.parametrize("block", ERROR_EXAMPLES, ids=[b[0] for b in ERROR_EXAMPLES])
def test_error_example_is_real_output(block):
    event, text = selector_of(block[0])
    with pytest.raises(FilterError) as info:
        compile_example(event, text)
    assert info.value.format() == "\n".join(block[1:])


def test_format_excerpt_matches_the_fixture():
    (block,) = [b for b in CONSOLE if b[0].startswith("$ grep field:")]
    fixture = (FORMATS / "sched_sched_wakeup.format").read_text().splitlines()
    assert block[1:] == [l for l in fixture if "field:" in l]
