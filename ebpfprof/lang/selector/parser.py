"""Parse the ``-e`` text into selectors.

Grammar (recursive descent, one function per rule)::

    selectors  := selector ( ',' selector )*
    selector   := probe | tracepoint | profiler
    probe      := ( 'kprobe' | 'kretprobe' ) ':' FUNC [ '+' OFF ] [ section ]
                | ( 'uprobe' | 'uretprobe' ) ':' UPLACE [ section ]
    UPLACE     := PLACE '@' FILE | '"' PLACE '@' chars '"'       perf-prof's two forms
                | FILE ':' PLACE                                 bpftrace's order; an
                                                                 unquoted path ends at ':'
    PLACE      := FUNC [ '+' OFF ] | '0x' HEX                    OFF: decimal or 0x hex
    tracepoint := SYS ':' NAME [ section ]               SYS, NAME may hold * ? [..]
    profiler   := PROFILER [ '/' OPTIONS ( '/' ATTR )* '/' ]   e.g. profile/-F 997 -g/
                                                         OPTIONS: the profiler's argv (shell-like
                                                         quoting); it may hold '/' (a breakpoint's
                                                         ADDR/LEN) up to the first part that begins
                                                         with an ATTR key; '--filter EXPR' last
    section    := '/' FIRST ( '/' ATTR )* '/'            FIRST: a filter, or a profiler's options
    ATTR       := KEY [ '=' VALUE ]                      empty ATTRs (//) are skipped
    FILE       := '"' chars '"' | chars up to '/' or ','

Inside a section, commas, slashes within double quotes, and anything within parentheses do not
end anything: ``sched:sched_wakeup/comm~"a,b" && (pid==1 || pid==2)/cpus=0,1/`` is one selector.
A section ends at a '/' that is followed by ',' or by the end of the text. The closing '/' may
be left out when no ',' follows (``sched:sched_wakeup/pid>1``).

Errors raise SelectorError with the column in the ``-e`` text and a caret under the spot.
"""
from __future__ import annotations

import re
import shlex

from ebpfprof.errors import SelectorError, close_matches
from ebpfprof.lang.idlist import parse_id_list
from ebpfprof.lang.selector.ast import (
    PROBE_KINDS, Attr, ProbeSelector, ProfilerSelector, Selector, Span, TracepointSelector,
)

__all__ = ["parse_selectors", "KNOWN_ATTRS"]

# ATTR name -> does it take a value?
KNOWN_ATTRS: dict[str, bool] = {
    "stack": False,
    "max-stack": True,
    "alias": True,
    "cpus": True,
    "str": True,        # probes: the arguments to read as C strings (str=1,2)
    "python-stack": False,   # the Python frames of CPython processes (--python-callchain for one)
}

_SYS_NAME_RE = re.compile(r"[A-Za-z0-9_.*?\[\]!^-]+")
_FUNC_RE = re.compile(r"[A-Za-z0-9_.$*?]+")
# FUNC[+OFF] or 0xADDR, whole
_PLACE_RE = re.compile(r"(?:0[xX](?P<addr>[0-9a-fA-F]+)|(?P<func>[A-Za-z_.$][A-Za-z0-9_.$*?]*)"
                       r"(?:\+(?P<off>0[xX][0-9a-fA-F]+|\d+))?)")
# a uprobe's FILE or PLACE written bare: up to '@', ':', '/', ',' or the end
_BARE_RE = re.compile(r'[^@:/,"]+')
_PROFILER_RE = re.compile(r"[A-Za-z][A-Za-z0-9_.-]*")
_ALIAS_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_.:-]*")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    # -- diagnostics -------------------------------------------------------------------------
    def error(self, message: str, start: int, end: int | None = None, hint: str = "") -> SelectorError:
        span = Span(start, end if end is not None else start + 1)
        return SelectorError(f"-e '{self.text}': {message} at column {start + 1}",
                             detail=span.caret(self.text), hint=hint)

    # -- selectors := selector (',' selector)* ------------------------------------------------
    def parse(self) -> list[Selector]:
        if not self.text.strip():
            raise SelectorError("-e needs at least one event selector",
                                hint="e.g. -e sched:sched_wakeup or -e 'syscalls:sys_enter_openat/common_pid==1/'")
        selectors = [self.selector()]
        while self.pos < len(self.text):
            if self.text[self.pos] != ",":
                raise self.error(f"unexpected {self.text[self.pos]!r}, expected ',' or the end", self.pos)
            self.pos += 1
            selectors.append(self.selector())
        return selectors

    def selector(self) -> Selector:
        start = self.pos
        while self.pos < len(self.text) and self.text[self.pos] == " ":
            self.pos += 1
            start = self.pos
        if self.pos >= len(self.text) or self.text[self.pos] == ",":
            raise self.error("empty selector", self.pos)
        head_end = self._scan_head_end()
        head = self.text[start:head_end]
        if ":" in head:
            kind = head.split(":", 1)[0]
            if kind in PROBE_KINDS:
                return self.probe(start, kind)
            return self.tracepoint(start)
        return self.profiler(start)

    def _scan_head_end(self) -> int:
        """End of the part before the section: the first '/' or ',' (quotes respected for uprobe files)."""
        i, quote = self.pos, False
        while i < len(self.text):
            c = self.text[i]
            if c == '"':
                quote = not quote
            elif not quote and c in "/,":
                break
            i += 1
        return i

    # -- tracepoint := SYS ':' NAME [section] --------------------------------------------------
    def tracepoint(self, start: int) -> TracepointSelector:
        system = self.word(_SYS_NAME_RE, "a tracepoint system name")
        self.expect(":")
        name = self.word(_SYS_NAME_RE, "a tracepoint name after ':'")
        first, _, attrs = self.section(start)
        return TracepointSelector(text=self.text[start:self.pos], span=Span(start, self.pos),
                                  attrs=attrs, system=system, name=name,
                                  filter=first if first and first.strip() else None)

    # -- probe := KIND ':' PLACE ... [section] --------------------------------------------------
    def probe(self, start: int, kind: str) -> ProbeSelector:
        self.pos += len(kind)
        self.expect(":")
        if kind.startswith("u"):
            place, file, file_span = self.uprobe_place(kind)
        else:
            head_end = self._scan_head_end()
            at = self.text.find("@", self.pos, head_end)
            place = self.place(self.pos, at if at >= 0 else head_end, kind)
            if self.peek() == "@":
                raise self.error(f"{kind} takes no '@file' (kernel functions only)", self.pos)
            if place[2] is not None:
                raise self.error(f"{kind} takes a function name, not an address", place[3].start,
                                 place[3].end, hint=f"{kind}:FUNC or {kind}:FUNC+0xOFF")
            file, file_span = None, None
        func, offset, address, func_span = place
        first, _, attrs = self.section(start)
        return ProbeSelector(text=self.text[start:self.pos], span=Span(start, self.pos), attrs=attrs,
                             kind=kind, function=func, file=file,
                             filter=first if first and first.strip() else None,
                             offset=offset, address=address, function_span=func_span, file_span=file_span)

    def place(self, begin: int, end: int, kind: str) -> tuple[str, int, int | None, Span]:
        """FUNC[+OFF] or 0xADDR written in text[begin:end] (moves past it)."""
        m = _PLACE_RE.match(self.text, begin, end)
        if not m or m.end() != end:
            bad = m.end() if m and m.end() > begin else begin
            got = repr(self.text[bad]) if bad < len(self.text) else "the end"
            what = "a function name or FUNC+OFFSET" if kind.startswith("k") else \
                "a function name, FUNC+OFFSET or 0xADDRESS"
            raise self.error(f"expected {what} after '{kind}:', got {got}",
                             bad, hint=f"e.g. {kind}:malloc, {kind}:malloc+0x10"
                                       + ("" if kind.startswith("k") else ', uprobe:0x4f2a0@"/bin/bash"'))
        self.pos = end
        span = Span(begin, end)
        if m.group("addr") is not None:
            return "", 0, int(m.group("addr"), 16), span
        off = m.group("off")
        return m.group("func"), int(off, 0) if off else 0, None, span

    def uprobe_place(self, kind: str):
        """The three uprobe forms; returns (place, file, file span)."""
        example = f'{kind}:FUNC@"/path/to/binary", {kind}:"FUNC@/path/to/binary" or {kind}:/path/to/binary:FUNC'
        if self.peek() == '"':
            q = self.pos
            end = self.text.find('"', q + 1)
            if end < 0:
                raise self.error("unterminated '\"'", q)
            inner = self.text[q + 1:end]
            if self.text[end + 1:end + 2] == ":":             # "FILE":PLACE
                file, file_span = self._file_text(q + 1, end, kind)
                self.pos = end + 2
                place = self.place(self.pos, self._scan_head_end(), kind)
                return place, file, file_span
            if "@" in inner:                                  # "PLACE@FILE"
                at = q + 1 + inner.index("@")
                place = self.place(q + 1, at, kind)
                file, file_span = self._file_text(at + 1, end, kind)
                self.pos = end + 1
                return place, file, file_span
            raise self.error(f"{kind} needs a function and a file: {example}", q, end + 1)
        if self.peek() == "/" or self.text.startswith(("./", "../"), self.pos):   # PATH:PLACE, unquoted
            colon = self.text.find(":", self.pos)
            stop = self.text.find(",", self.pos)
            if colon < 0 or 0 <= stop < colon:
                raise self.error(f"a path after '{kind}:' needs ':FUNC' after it: {example}", self.pos)
            file, file_span = self._file_text(self.pos, colon, kind)
            self.pos = colon + 1
            return self.place(self.pos, self._scan_head_end(), kind), file, file_span
        m = _BARE_RE.match(self.text, self.pos)
        if not m:
            got = repr(self.peek()) if self.peek() else "the end"
            raise self.error(f"expected a function and a file after '{kind}:', got {got}", self.pos,
                             hint=example)
        after = self.text[m.end():m.end() + 1]
        if after == "@":                                     # PLACE@FILE
            place = self.place(self.pos, m.end(), kind)
            self.pos += 1
            return (place, *self.file())
        if after == ":":                                     # FILE:PLACE (a name: libc, bash)
            file, file_span = self._file_text(self.pos, m.end(), kind)
            self.pos = m.end() + 1
            return self.place(self.pos, self._scan_head_end(), kind), file, file_span
        raise self.error(f"{kind} needs a file: {kind}:{m.group(0)}@\"/path/to/binary\"", m.end(),
                         hint=f"or {kind}:libc:{m.group(0)} for a library, {kind}:bash:{m.group(0)} for a program on PATH")

    def _file_text(self, begin: int, end: int, kind: str) -> tuple[str, Span]:
        if begin >= end:
            raise self.error(f"empty file name in '{kind}:'", begin)
        return self.text[begin:end], Span(begin, end)

    def file(self) -> tuple[str, Span]:
        """FILE after '@': quoted, or bare up to '/' or ','."""
        if self.peek() == '"':
            end = self.text.find('"', self.pos + 1)
            if end < 0:
                raise self.error("unterminated '\"' in file name", self.pos)
            begin, self.pos = self.pos + 1, end + 1
        else:
            begin = self.pos
            end = self.pos = self._scan_head_end()
        if begin >= end:
            raise self.error("empty file name after '@'", self.pos,
                             hint='quote the file, since a path holds \'/\': uprobe:func@"/path/to/binary"')
        return self.text[begin:end], Span(begin, end)

    # -- profiler := NAME [section] -------------------------------------------------------------
    def profiler(self, start: int) -> ProfilerSelector:
        """A profiler's first part is its own options. They may hold '/' (``breakpoint/0x1000/4:w/``):
        parts up to the first one that begins with a known ATTR key belong to the options."""
        name = self.word(_PROFILER_RE, "a tracepoint (sys:name), a probe or a profiler name")
        if self.peek() != "/":
            self.section(start)         # the end, a ',', or an error about what follows
            return ProfilerSelector(text=self.text[start:self.pos], span=Span(start, self.pos), name=name)
        parts = self._split_section(self.pos)
        n = 1
        while n < len(parts) and not self._starts_with_attr(*parts[n]):
            n += 1
        opt_start, opt_end = parts[0][0], parts[n - 1][1]
        attrs = tuple(a for a in (self.attr(s, e) for s, e in parts[n:]) if a is not None)
        self._check_attrs(attrs)
        text = self.text[opt_start:opt_end]
        filter_text, filter_span = None, None
        cut = _filter_option(text)
        if cut is not None:
            at, value_at = cut
            filter_text = text[value_at:].strip()
            if len(filter_text) >= 2 and filter_text[0] == filter_text[-1] == "'":
                filter_text = filter_text[1:-1]       # --filter 'comm=="bash"'
                value_at += 1
            filter_span = Span(opt_start + value_at, opt_end)
            if not filter_text.strip():
                raise self.error("--filter needs an expression, e.g. --filter comm==\"bash\"",
                                 opt_start + at, opt_end)
            text = text[:at]
        try:
            options = tuple(shlex.split(text))
        except ValueError as e:
            raise self.error(f"cannot split profiler options: {e}", opt_start) from None
        return ProfilerSelector(text=self.text[start:self.pos], span=Span(start, self.pos), attrs=attrs,
                                name=name, options=options, options_span=Span(opt_start, opt_end),
                                filter=filter_text, filter_span=filter_span)

    def _starts_with_attr(self, start: int, end: int) -> bool:
        key = self.text[start:end].strip().partition("=")[0]
        return key in KNOWN_ATTRS or not key

    # -- section := '/' FIRST ('/' ATTR)* '/' -----------------------------------------------------
    def section(self, start: int) -> tuple[str | None, Span | None, tuple[Attr, ...]]:
        if self.peek() != "/":
            if self.pos < len(self.text) and self.text[self.pos] != ",":
                raise self.error(f"unexpected {self.text[self.pos]!r}, expected '/', ',' or the end", self.pos)
            return None, None, ()
        open_pos = self.pos
        parts = self._split_section(open_pos)
        (first_start, first_end), *attr_parts = parts
        first = self.text[first_start:first_end]
        attrs = tuple(a for a in (self.attr(s, e) for s, e in attr_parts) if a is not None)
        self._check_attrs(attrs)
        return first, Span(first_start, first_end), attrs

    def _split_section(self, open_pos: int) -> list[tuple[int, int]]:
        """Split '/a/b/c/' into spans of a, b, c; leaves self.pos after the closing '/'."""
        parts: list[tuple[int, int]] = []
        i = open_pos + 1
        part_start = i
        quote = False
        depth = 0
        saw_comma = False
        while i < len(self.text):
            c = self.text[i]
            if quote:
                if c == "\\":
                    i += 1
                elif c == '"':
                    quote = False
            elif c == '"':
                quote = True
            elif c == "(":
                depth += 1
            elif c == ")":
                depth = max(depth - 1, 0)
            elif c == "," and depth == 0:
                saw_comma = True
            elif c == "/" and depth == 0:
                parts.append((part_start, i))
                part_start = i + 1
                if i + 1 == len(self.text) or self.text[i + 1] == ",":
                    self.pos = i + 1
                    return parts
            i += 1
        if quote:
            raise self.error("unterminated '\"'", self.text.rfind('"', open_pos))
        if saw_comma:
            raise self.error("this '/' section is not closed: end it with '/' before the next ','",
                             open_pos, len(self.text),
                             hint="write it as sys:name/filter/ATTR/ — the closing '/' tells where the next selector starts")
        # Lenient: a missing closing '/' at the very end. With a '(' left open, the last '/'
        # was meant to close the section: end the filter there, so that the filter's own
        # error names the missing ')' (rather than the '/').
        end = len(self.text)
        if depth > 0 and self.text.endswith("/") and end - 1 >= part_start:
            end -= 1
        parts.append((part_start, end))
        self.pos = len(self.text)
        return parts

    def attr(self, start: int, end: int) -> Attr | None:
        raw = self.text[start:end]
        if not raw.strip():
            return None
        lead = len(raw) - len(raw.lstrip())
        start += lead
        raw = raw.strip()
        key, sep, value = raw.partition("=")
        span = Span(start, start + len(raw))
        if key not in KNOWN_ATTRS:
            guess = close_matches(key, KNOWN_ATTRS)
            raise self.error(f"unknown ATTR '{key}'", start, start + len(key),
                             hint=(f"did you mean '{guess[0]}'? " if guess else "")
                             + "known ATTRs: " + ", ".join(KNOWN_ATTRS))
        takes_value = KNOWN_ATTRS[key]
        if takes_value and not sep:
            raise self.error(f"ATTR '{key}' needs a value: {key}=...", start, start + len(key))
        if not takes_value and sep:
            raise self.error(f"ATTR '{key}' takes no value", start, start + len(raw))
        if key == "max-stack":
            if not value.isdigit() or not 1 <= int(value) <= 127:
                raise self.error(f"max-stack={value!r}: expected a number of frames from 1 to 127",
                                 start + len(key) + 1, start + len(raw))
        elif key == "alias":
            if not _ALIAS_RE.fullmatch(value):
                raise self.error(f"alias={value!r}: expected a name of letters, digits, '_', '-', '.'",
                                 start + len(key) + 1, start + len(raw))
        elif key == "cpus":
            try:
                parse_id_list(value, "cpus=")
            except ValueError as e:
                raise self.error(str(e), start + len(key) + 1, start + len(raw)) from None
        return Attr(key, value if sep else None, span)

    def _check_attrs(self, attrs: tuple[Attr, ...]) -> None:
        seen: dict[str, Attr] = {}
        for a in attrs:
            if a.key in seen:
                raise self.error(f"ATTR '{a.key}' given twice", a.span.start, a.span.end)
            seen[a.key] = a

    # -- tokens --------------------------------------------------------------------------------
    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def expect(self, c: str) -> None:
        if self.peek() != c:
            got = repr(self.peek()) if self.peek() else "the end"
            raise self.error(f"expected '{c}', got {got}", self.pos)
        self.pos += 1

    def word(self, pattern: re.Pattern[str], what: str) -> str:
        m = pattern.match(self.text, self.pos)
        if not m:
            got = repr(self.peek()) if self.peek() else "the end"
            raise self.error(f"expected {what}, got {got}", self.pos)
        self.pos = m.end()
        return m.group(0)


def _filter_option(text: str) -> tuple[int, int] | None:
    """Where ``--filter`` starts in a profiler's options, and where its expression starts: it
    takes the rest of the text, unsplit, so a filter needs no shell quoting of its own."""
    for m in re.finditer(r"(?:^|\s)(--filter)(?:=|\s+|$)", text):
        if text[:m.start(1)].count('"') % 2 == 0 and text[:m.start(1)].count("'") % 2 == 0:
            return m.start(1), m.end()
    return None


def parse_selectors(text: str) -> list[Selector]:
    """Parse a whole ``-e`` argument.

    >>> [s.text for s in parse_selectors('sched:sched_wakeup/pid>1/,profile/-F 997/')]
    ['sched:sched_wakeup/pid>1/', 'profile/-F 997/']
    """
    return _Parser(text).parse()
