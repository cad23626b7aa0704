"""codegen/sample_filter.py: the profiler --filter's language, errors and generated C (golden)."""
from __future__ import annotations

import pytest

import support

from ebpfprof.codegen.sample_filter import (SAMPLE_FIELDS, SampleContext, compile_sample_filter,
                                            generate_sample_filter_program, sample_format)
from ebpfprof.lang.filter import FilterError

X86 = SampleContext(regs_ip=128, ip_reg="ip", addr=176, sample_period=168)


def test_golden():
    cf = compile_sample_filter('comm ~ "py*" && addr >= 0x1000 || pid == 42', selector="page-faults",
                               fn_name="ep_prof0_filter")
    support.check_golden("codegen/sample_filter.c",
                         generate_sample_filter_program(cf, X86, label="page-faults/--filter .../"))


def test_golden_python_stacks_without_a_filter():
    """--python-callchain on a profiler: a keep-all program whose kept samples' Python stacks go
    to ep_py_ring (bpf/python_sample.h)."""
    text = generate_sample_filter_program(None, X86, label="profile/-F 99/", fn_name="ep_prof0_filter",
                                          python_stack=True, task_fsbase_offset=3128)
    support.check_golden("codegen/sample_python.c", text)
    assert "ep_py_sample(EP_CTX_U64(ctx, 128));" in text and "return 1;" in text
    with pytest.raises(ValueError, match="fsbase"):
        generate_sample_filter_program(None, X86, python_stack=True)


def test_fields_in_record_order_without_overlap():
    fmt = sample_format("profile")
    assert [f.name for f in fmt.fields] == list(SAMPLE_FIELDS)
    ends = [(f.offset, f.offset + f.size) for f in fmt.fields]
    assert all(a[1] <= b[0] for a, b in zip(ends, ends[1:])) and ends[-1][1] <= 64
    assert fmt.field("comm").kind.name == "STRING"


def test_the_fields_a_filter_reads():
    cf = compile_sample_filter("tid != 0 && period > 100", selector="profile", fn_name="f0")
    assert cf.fields == ("tid", "period")


@pytest.mark.parametrize("text, message", [
    ("retval > 1", "profile --filter filter 'retval > 1': unknown field 'retval' at column 1"),
    ("pid >", "unexpected end of filter at column 6"),
    ('comm > "a"', "comm"),
])
def test_errors_name_the_column(text, message):
    with pytest.raises(FilterError) as e:
        compile_sample_filter(text, selector="profile", fn_name="f0")
    assert message in e.value.message
    assert e.value.exit_code == 2
