"""The -e grammar (SPEC §3): what each selector parses into, and the exact diagnostics for bad input.

No kernel: the parser only reads text. Errors are checked word for word, caret line included,
because that text is what a user sees.
"""
from __future__ import annotations

import pytest

from ebpfprof.errors import SelectorError
from ebpfprof.lang.selector.ast import (
    Attr, ProbeSelector, ProfilerSelector, Span, TracepointSelector,
)
from ebpfprof.lang.selector.parser import KNOWN_ATTRS, parse_selectors
from ebpfprof.resolve import parse_all


def one(text: str):
    sels = parse_selectors(text)
    assert len(sels) == 1, sels
    return sels[0]


def error_of(text: str) -> SelectorError:
    with pytest.raises(SelectorError) as info:
        parse_selectors(text)
    return info.value


# -- tracepoints ---------------------------------------------------------------------------------

def test_plain_tracepoint():
    s = one("sched:sched_wakeup")
    assert isinstance(s, TracepointSelector)
    assert (s.system, s.name, s.filter, s.attrs) == ("sched", "sched_wakeup", None, ())
    assert s.text == "sched:sched_wakeup"
    assert s.span == Span(0, 18)
    assert not s.has_wildcard
    assert (s.alias, s.stack, s.max_stack, s.cpus) == (None, False, None, None)


@pytest.mark.parametrize("text, system, name", [
    ("sched:sched_wake*", "sched", "sched_wake*"),
    ("s?hed:sched_[sw]*", "s?hed", "sched_[sw]*"),
    ("*:sys_enter_getppid", "*", "sys_enter_getppid"),
    ("irq:irq_handler_?ntry", "irq", "irq_handler_?ntry"),
])
def test_wildcards_stay_in_the_names(text, system, name):
    s = one(text)
    assert (s.system, s.name) == (system, name)
    assert s.has_wildcard


def test_several_selectors_with_spans_into_the_whole_text():
    text = "sched:sched_wakeup,sched:sched_switch, irq:irq_handler_entry"
    a, b, c = parse_selectors(text)
    assert [x.text for x in (a, b, c)] == ["sched:sched_wakeup", "sched:sched_switch", "irq:irq_handler_entry"]
    assert a.span == Span(0, 18)
    assert b.span == Span(19, 37)
    # leading blanks after a comma are not part of the selector
    assert c.span == Span(39, 60) and text[c.span.start:c.span.end] == c.text


def test_filter_with_commas_quotes_parentheses_is_one_selector():
    text = 'sched:sched_wakeup/comm~"a,b" && (pid==1 || pid==2)/cpus=0,1/,sched:sched_switch'
    a, b = parse_selectors(text)
    assert a.filter == 'comm~"a,b" && (pid==1 || pid==2)'
    assert text[19:51] == a.filter
    assert a.attrs == (Attr("cpus", "0,1", Span(52, 60)),)
    assert a.cpus == (0, 1)
    assert b.text == "sched:sched_switch" and b.filter is None


def test_comma_inside_parentheses_does_not_split():
    s = one("sched:sched_wakeup/(pid==1,pid==2)/")
    assert s.filter == "(pid==1,pid==2)"


def test_slash_inside_quotes_is_part_of_the_filter():
    s = one('sched:sched_process_exec/filename=="/usr/bin/ls"/stack/')
    assert s.filter == 'filename=="/usr/bin/ls"'
    assert s.stack and [a.key for a in s.attrs] == ["stack"]


def test_slash_followed_by_comma_inside_quotes_does_not_end_the_section():
    a, b = parse_selectors('sched:sched_process_exec/filename~"/tmp/,x*"/,sched:sched_switch')
    assert a.filter == 'filename~"/tmp/,x*"'
    assert b.name == "sched_switch"


def test_escaped_quote_inside_a_string():
    s = one(r'sched:sched_wakeup/comm=="a\"/b"/')
    assert s.filter == r'comm=="a\"/b"'


def test_all_attrs_together():
    s = one("sched:sched_wakeup/pid>1/stack/max-stack=8/alias=w1/cpus=0-3/")
    assert s.filter == "pid>1"
    assert [(a.key, a.value) for a in s.attrs] == [
        ("stack", None), ("max-stack", "8"), ("alias", "w1"), ("cpus", "0-3")]
    assert (s.stack, s.max_stack, s.alias, s.cpus) == (True, 8, "w1", (0, 1, 2, 3))
    assert s.attrs[1].span == Span(31, 42)


def test_empty_filter_and_empty_attrs_are_skipped():
    s = one("sched:sched_wakeup//alias=a//stack/")
    assert s.filter is None
    assert [a.key for a in s.attrs] == ["alias", "stack"]


def test_blank_filter_is_no_filter():
    assert one("sched:sched_wakeup/  /stack/").filter is None


def test_missing_closing_slash_at_the_very_end_is_accepted():
    s = one("sched:sched_wakeup/pid>1")
    assert s.filter == "pid>1" and s.text == "sched:sched_wakeup/pid>1"


def test_unclosed_paren_leaves_the_last_slash_as_the_section_end():
    """The filter compiler then names the missing ')', not the '/' (issue #9)."""
    from ebpfprof.lang.filter import FilterError, compile_filter
    import support

    s = one("sched:sched_wakeup/(pid>1/")
    assert s.filter == "(pid>1" and s.attrs == ()
    assert one("sched:sched_wakeup/(pid>1").filter == "(pid>1"
    with pytest.raises(FilterError) as info:
        compile_filter(s.filter, support.fixture_format("sched_sched_wakeup"), selector="sched:sched_wakeup",
                       fn_name="f")
    assert "expected ')' to close the '(' at column 1" in info.value.message


def test_two_aliases_of_one_tracepoint():
    a, b = parse_selectors("sched:sched_wakeup//alias=a/,sched:sched_wakeup//alias=b/")
    assert (a.alias, b.alias) == ("a", "b")
    assert (a.name, b.name) == ("sched_wakeup", "sched_wakeup")


@pytest.mark.parametrize("alias", ["w", "_x", "a-b", "a.b", "a:b", "W9_"])
def test_alias_names_accepted(alias):
    assert one(f"sched:sched_wakeup//alias={alias}/").alias == alias


def test_each_minus_e_option_is_parsed_on_its_own():
    pairs = parse_all(("sched:sched_wakeup/pid>1/", "sched:sched_switch,irq:irq_handler_entry"))
    assert [(t, s.text) for t, s in pairs] == [
        ("sched:sched_wakeup/pid>1/", "sched:sched_wakeup/pid>1/"),
        ("sched:sched_switch,irq:irq_handler_entry", "sched:sched_switch"),
        ("sched:sched_switch,irq:irq_handler_entry", "irq:irq_handler_entry"),
    ]


# -- profilers ------------------------------------------------------------------------------------

def test_profiler_options_are_split_like_a_shell():
    s = one("profile/-F 997 -g/")
    assert isinstance(s, ProfilerSelector)
    assert s.name == "profile"
    assert s.options == ("-F", "997", "-g")
    assert s.attrs == ()


def test_profiler_with_options_and_attrs():
    s = one("profile/-F 997 -g/alias=p/cpus=1/")
    assert s.options == ("-F", "997", "-g")
    assert (s.alias, s.cpus) == ("p", (1,))


def test_profiler_options_may_hold_a_slash():
    # A breakpoint's ADDR/LEN: parts up to the first that begins with an ATTR key are options.
    s = one("breakpoint/0x1000/8:rw/alias=b/")
    assert s.options == ("0x1000/8:rw",)
    assert s.alias == "b"
    assert one("breakpoint/'0x1000/8:rw'/").options == ("0x1000/8:rw",)


def test_profiler_filter_takes_the_rest_of_the_options():
    s = one('profile/-F 99 --filter comm=="a b" && cpu==0/cpus=0/')
    assert s.options == ("-F", "99")
    assert s.filter == 'comm=="a b" && cpu==0'
    text = 'profile/-F 99 --filter comm=="a b" && cpu==0/cpus=0/'
    assert text[s.filter_span.start:s.filter_span.end] == s.filter
    assert one("profile/--filter 'pid==1'/").filter == "pid==1"


def test_profiler_filter_needs_an_expression():
    e = error_of("profile/-g --filter /")
    assert "--filter needs an expression" in e.message


def test_profiler_option_with_slash_must_be_double_quoted():
    # A '/' ends the section unless it sits inside double quotes.
    s = one('breakpoint/"0x1000/8:rw"/')
    assert s.options == ("0x1000/8:rw",)


def test_bare_profilers():
    a, b = parse_selectors("page-faults,profile")
    assert (a.name, a.options, b.name, b.options) == ("page-faults", (), "profile", ())
    assert isinstance(a, ProfilerSelector) and isinstance(b, ProfilerSelector)


def test_profiler_with_empty_options_and_an_alias():
    s = one("page-faults//alias=pf/")
    assert s.options == () and s.alias == "pf"


# -- probes ---------------------------------------------------------------------------------------

def test_kprobe_and_kretprobe():
    k, r = parse_selectors("kprobe:do_sys_openat2,kretprobe:do_sys_openat2/retval<0/stack/")
    assert isinstance(k, ProbeSelector) and isinstance(r, ProbeSelector)
    assert (k.kind, k.function, k.file, k.filter) == ("kprobe", "do_sys_openat2", None, None)
    assert (r.kind, r.function, r.filter, r.stack) == ("kretprobe", "do_sys_openat2", "retval<0", True)


def test_uprobe_quoted_file():
    s = one('uprobe:malloc@"/lib/x86_64-linux-gnu/libc.so.6"')
    assert (s.kind, s.function, s.file) == ("uprobe", "malloc", "/lib/x86_64-linux-gnu/libc.so.6")


def test_uprobe_file_with_a_comma_then_another_selector():
    text = 'uprobe:func@"/path/with,comma"/arg1>0/alias=f/,sched:sched_wakeup'
    u, t = parse_selectors(text)
    assert (u.kind, u.function, u.file, u.filter, u.alias) == ("uprobe", "func", "/path/with,comma", "arg1>0", "f")
    assert u.text == 'uprobe:func@"/path/with,comma"/arg1>0/alias=f/'
    assert t.text == "sched:sched_wakeup"


def test_uretprobe_unquoted_relative_file():
    s = one("uretprobe:malloc@libc.so.6/retval==0/")
    assert (s.kind, s.file, s.filter) == ("uretprobe", "libc.so.6", "retval==0")


# -- errors: message, column, caret, hint --------------------------------------------------------

def test_empty_text():
    for text in ("", "   "):
        e = error_of(text)
        assert e.message == "-e needs at least one event selector"
        assert e.hint == "e.g. -e sched:sched_wakeup or -e 'syscalls:sys_enter_openat/common_pid==1/'"
        assert e.exit_code == 2


def test_empty_selector_between_commas():
    e = error_of("sched:sched_wakeup,,sched:sched_switch")
    assert e.message == "-e 'sched:sched_wakeup,,sched:sched_switch': empty selector at column 20"
    assert e.detail == ("    sched:sched_wakeup,,sched:sched_switch\n"
                        "                       ^")


def test_trailing_comma():
    e = error_of("sched:sched_wakeup,")
    assert e.message == "-e 'sched:sched_wakeup,': empty selector at column 20"


def test_unknown_attr_names_it_and_suggests():
    e = error_of("sched:sched_wakeup//stak/")
    assert e.format() == (
        "ebpfprof: error: -e 'sched:sched_wakeup//stak/': unknown ATTR 'stak' at column 21\n"
        "    sched:sched_wakeup//stak/\n"
        "                        ^~~~\n"
        "hint: did you mean 'stack'? known ATTRs: stack, max-stack, alias, cpus, str, python-stack")


def test_unknown_attr_without_a_close_name():
    e = error_of("sched:sched_wakeup/pid>1/foo=1/")
    assert e.message == "-e 'sched:sched_wakeup/pid>1/foo=1/': unknown ATTR 'foo' at column 26"
    assert e.detail.splitlines()[1] == " " * 4 + " " * 25 + "^~~"
    assert e.hint == "known ATTRs: stack, max-stack, alias, cpus, str, python-stack"


def test_known_attrs_list():
    assert KNOWN_ATTRS == {"stack": False, "max-stack": True, "alias": True, "cpus": True, "str": True,
                           "python-stack": False}


def test_section_not_closed_before_the_next_selector():
    text = "sched:sched_wakeup/pid>1,sched:sched_switch"
    e = error_of(text)
    assert e.message == (f"-e '{text}': this '/' section is not closed: end it with '/' before the next ',' "
                         "at column 19")
    assert e.detail == f"    {text}\n" + " " * 4 + " " * 18 + "^" + "~" * (len(text) - 19)
    assert e.hint == "write it as sys:name/filter/ATTR/ — the closing '/' tells where the next selector starts"


@pytest.mark.parametrize("value, caret", [("0", "^"), ("abc", "^~~"), ("128", "^~~"), ("-1", "^~")])
def test_bad_max_stack(value, caret):
    text = f"sched:sched_wakeup//max-stack={value}/"
    e = error_of(text)
    assert e.message == (f"-e '{text}': max-stack={value!r}: expected a number of frames from 1 to 127 "
                         "at column 31")
    assert e.detail.splitlines()[1] == " " * 34 + caret


def test_max_stack_bounds_accepted():
    assert one("sched:sched_wakeup//max-stack=1/").max_stack == 1
    assert one("sched:sched_wakeup//max-stack=127/").max_stack == 127


def test_attr_that_needs_a_value():
    e = error_of("sched:sched_wakeup//max-stack/")
    assert e.message == ("-e 'sched:sched_wakeup//max-stack/': ATTR 'max-stack' needs a value: max-stack=... "
                         "at column 21")


def test_attr_that_takes_no_value():
    e = error_of("sched:sched_wakeup//stack=1/")
    assert e.message == "-e 'sched:sched_wakeup//stack=1/': ATTR 'stack' takes no value at column 21"
    assert e.detail.splitlines()[1] == " " * 24 + "^~~~~~~"


@pytest.mark.parametrize("alias", ["1x", "", "a b", "é", "a;b"])
def test_bad_alias(alias):
    text = f"sched:sched_wakeup//alias={alias}/"
    e = error_of(text)
    assert e.message == (f"-e '{text}': alias={alias!r}: expected a name of letters, digits, '_', '-', '.' "
                         "at column 27")


@pytest.mark.parametrize("cpus, reason", [
    ("a", "'a' in cpus= 'a' is not a number or a range like 0-3"),
    ("3-1", "bad range '3-1' in cpus= '3-1'"),
])
def test_bad_cpus_attr(cpus, reason):
    text = f"sched:sched_wakeup//cpus={cpus}/"
    assert error_of(text).message == f"-e '{text}': {reason} at column 26"


def test_attr_given_twice():
    e = error_of("sched:sched_wakeup//stack/stack/")
    assert e.message == "-e 'sched:sched_wakeup//stack/stack/': ATTR 'stack' given twice at column 27"


def test_missing_tracepoint_name():
    e = error_of("sched:")
    assert e.message == "-e 'sched:': expected a tracepoint name after ':', got the end at column 7"
    assert e.detail == "    sched:\n          ^"


def test_missing_system():
    assert error_of(":x").message == "-e ':x': expected a tracepoint system name, got ':' at column 1"


def test_junk_after_a_name():
    e = error_of("sched:sched_wakeup x")
    assert e.message == "-e 'sched:sched_wakeup x': unexpected ' ', expected '/', ',' or the end at column 19"


def test_not_a_name_at_all():
    e = error_of("1abc")
    assert e.message == "-e '1abc': expected a tracepoint (sys:name), a probe or a profiler name, got '1' at column 1"


def test_unterminated_quote_in_filter():
    e = error_of('sched:sched_wakeup/comm=="abc/')
    assert e.message == '-e \'sched:sched_wakeup/comm=="abc/\': unterminated \'"\' at column 26'
    assert e.detail.splitlines()[1] == " " * 29 + "^"


def test_uprobe_needs_a_file():
    e = error_of("uprobe:malloc")
    assert e.message == '-e \'uprobe:malloc\': uprobe needs a file: uprobe:malloc@"/path/to/binary" at column 14'


def test_kprobe_takes_no_file():
    e = error_of('kprobe:f@"x"')
    assert e.message == "-e 'kprobe:f@\"x\"': kprobe takes no '@file' (kernel functions only) at column 9"


def test_uprobe_unterminated_file_quote():
    e = error_of('uprobe:malloc@"/x')
    assert e.message == '-e \'uprobe:malloc@"/x\': unterminated \'"\' in file name at column 15'


def test_uprobe_unquoted_absolute_path_is_rejected():
    # FILE is '"..."' or chars up to '/' or ',': an absolute path must be quoted.
    e = error_of("uretprobe:malloc@/lib/libc.so.6")
    assert e.message == "-e 'uretprobe:malloc@/lib/libc.so.6': empty file name after '@' at column 18"


def test_kprobe_without_function():
    assert error_of("kprobe:").message == ("-e 'kprobe:': expected a function name or FUNC+OFFSET after 'kprobe:', "
                                           "got the end at column 8")


def test_error_in_the_second_selector_points_into_the_whole_text():
    text = "sched:sched_switch,sched:sched_wakeup//alias=/"
    e = error_of(text)
    assert e.message.endswith("at column 46")
    assert e.detail.splitlines()[0] == "    " + text
    assert e.detail.splitlines()[1].index("^") == 4 + 45


def test_errors_are_usage_errors_with_exit_2():
    e = error_of("sched:sched_wakeup//nope/")
    assert e.exit_code == 2
    assert e.format().startswith("ebpfprof: error: ")
    assert e.format().count("ebpfprof: error:") == 1


# -- uprobe forms (#11): perf-prof's two, bpftrace's order, offsets and addresses --------------

@pytest.mark.parametrize("text, kind, func, offset, address, file, filt", [
    ('uprobe:malloc@"libc"', "uprobe", "malloc", 0, None, "libc", None),
    ('uprobe:"malloc@/lib/libc.so.6"/arg1>0/', "uprobe", "malloc", 0, None, "/lib/libc.so.6", "arg1>0"),
    ("uprobe:/bin/bash:readline", "uprobe", "readline", 0, None, "/bin/bash", None),
    ('uretprobe:"/bin/bash":readline//stack/', "uretprobe", "readline", 0, None, "/bin/bash", None),
    ("uprobe:libc:malloc+0x10", "uprobe", "malloc", 16, None, "libc", None),
    ("uprobe:./bin/probed:probed_add", "uprobe", "probed_add", 0, None, "./bin/probed", None),
    ("uprobe:bash:readline+4/arg1>1/", "uprobe", "readline", 4, None, "bash", "arg1>1"),
    ('uprobe:0x4f2a0@"/bin/bash"', "uprobe", "", 0, 0x4f2a0, "/bin/bash", None),
    ("uretprobe:/usr/bin/x:0X10", "uretprobe", "", 0, 0x10, "/usr/bin/x", None),
    ("uprobe:_ZN3foo3barEv@libfoo", "uprobe", "_ZN3foo3barEv", 0, None, "libfoo", None),
    ("kprobe:do_sys_openat2+0x8", "kprobe", "do_sys_openat2", 8, None, None, None),
])
def test_probe_places(text, kind, func, offset, address, file, filt):
    s = one(text)
    assert (s.kind, s.function, s.offset, s.address, s.file, s.filter) == (kind, func, offset, address, file, filt)
    # spans point at what they name
    written = text[s.function_span.start:s.function_span.end]
    if func:
        assert written.split("+")[0] == func and int(written.split("+")[1], 0) == offset if offset else written == func
    else:
        assert int(written, 16) == address
    if file:
        assert text[s.file_span.start:s.file_span.end] == file


def test_bpftrace_path_then_another_selector():
    u, t = parse_selectors("uprobe:/bin/bash:readline/comm==\"bash\"/,sched:sched_switch")
    assert (u.file, u.function, u.filter, t.text) == ("/bin/bash", "readline", 'comm=="bash"', "sched:sched_switch")


@pytest.mark.parametrize("text, message", [
    ("uprobe:/bin/bash", "a path after 'uprobe:' needs ':FUNC' after it"),
    ('uprobe:"abc"', "uprobe needs a function and a file"),
    ("uprobe:mal-loc@x", "expected a function name, FUNC+OFFSET or 0xADDRESS after 'uprobe:', got '-' at column 11"),
    ("kprobe:0x10", "kprobe takes a function name, not an address at column 8"),
    ("uprobe:libc:", "expected a function name, FUNC+OFFSET or 0xADDRESS after 'uprobe:', got the end"),
    ('uprobe:"malloc@"', "empty file name in 'uprobe:'"),
])
def test_probe_place_errors(text, message):
    assert message in error_of(text).message
