"""Event filters (ftrace's filter language), compiled to BPF C that runs in the kernel.

Example (``fmt`` is the EventFormat of sched:sched_wakeup)::

    cf = compile_filter('pid > 100 && comm ~ "ba*"', fmt, selector="sched:sched_wakeup",
                        fn_name="filter_0")
    cf.fields   # ('pid', 'comm')
    cf.c_code   # file-scope C defining `static __always_inline int filter_0(void *ctx)`

The passes, in order (the first failing one stops with a FilterError):

    lexer.tokenize → parser.parse → check.check → to_c.emit_c

The language is described in docs/filters.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from ebpfprof.codegen.c import CCode, CIdent, emitted
from ebpfprof.lang.filter.ast import FilterError, FilterSource
from ebpfprof.lang.filter.check import STRING_CAP, IfindexResolver, check
from ebpfprof.lang.filter.parser import parse
from ebpfprof.lang.filter.to_c import emit_c
from ebpfprof.kernel.event_format import EventFormat

__all__ = ["compile_filter", "CompiledFilter", "FilterError", "STRING_CAP"]


@dataclass(frozen=True)
class CompiledFilter:
    """A filter as C: ``c_code`` defines ``static __always_inline int {fn_name}(void *ctx)``.

    The function returns nonzero to keep the event; ``ctx`` is the tracepoint program's context.
    ``fields`` are the format fields the filter reads, in order of first use.
    """

    c_code: CCode
    fields: tuple[str, ...]
    fn_name: CIdent
    text: str


def compile_filter(text: str, fmt: EventFormat, *, selector: str, fn_name: str,
                   ifindex_resolver: Optional[IfindexResolver] = None) -> CompiledFilter:
    """Compile filter ``text`` for the event ``fmt`` describes.

    ``selector`` only labels error messages (``sched:sched_wakeup filter 'pid>>1': ...``).
    ``fn_name`` must be a C identifier (ValueError otherwise: that is a caller's bug); every C
    name emitted starts with it. ``ifindex_resolver(name)`` maps an interface name to its index
    or None (default: pyroute2 in the current network namespace).
    Raises FilterError (a SelectorError, exit code 2) for any problem with ``text``.
    """
    src = FilterSource(text, selector)
    tree = parse(src)
    checked = check(tree, fmt, src, ifindex_resolver=ifindex_resolver)
    c_code, fields = emit_c(checked, fmt, src, fn_name)
    return CompiledFilter(emitted(c_code), fields, CIdent(fn_name), text)
