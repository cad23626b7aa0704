"""Event classes: what the C reader needs to turn a record into a PerfEvent for its handler."""
from __future__ import annotations

from ebpfprof import _ring
from ebpfprof.kernel.event_format import EventFormat, FieldKind
from ebpfprof.resolve.spec import EventSpec
from ebpfprof.run.script import Callbacks, find_handler

__all__ = ["field_specs", "event_class", "event_classes"]

_FIELD_CODES = {
    FieldKind.INT: _ring.FIELD_INT,
    FieldKind.STRING: _ring.FIELD_STR,
    FieldKind.DYN_STRING: _ring.FIELD_DYN_STR,
    FieldKind.REL_STRING: _ring.FIELD_REL_STR,
    FieldKind.ARRAY: _ring.FIELD_ARRAY,
    FieldKind.DYN_ARRAY: _ring.FIELD_DYN_ARRAY,
    FieldKind.REL_ARRAY: _ring.FIELD_REL_ARRAY,
    FieldKind.OTHER: _ring.FIELD_ARRAY,
}


def field_specs(fmt: EventFormat) -> list[tuple[str, int, int, int, bool]]:
    """The reader's field table: (name, kind, offset, size, signed) per field of the record."""
    return [(f.name, _FIELD_CODES[f.kind], f.offset, f.size, f.signed) for f in fmt.fields]


def sample_field_specs(samples) -> list[tuple[str, int, int, int, bool]]:
    """The reader's field table for a profiler's samples: each field names its member's bit."""
    return [(f.name, _ring.FIELD_SAMPLE, f.bit, f.half, False) for f in samples.fields]


def event_class(spec: EventSpec, handler) -> "_ring.EventClass":
    """The class of one selector's events; ``spec`` is its ``info`` (print() reads it)."""
    if spec.sample is not None:
        from ebpfprof.profilers.base import REG_NAMES

        cls = _ring.EventClass(spec.event_name, handler, sample_field_specs(spec.sample), spec,
                               sample=spec.sample.layout, reg_names=REG_NAMES)
        if spec.budget is not None:
            cls.budget = spec.budget
        return cls
    return _ring.EventClass(spec.event_name, handler, field_specs(spec.format), spec)


def event_classes(specs: list[EventSpec], module, callbacks: Callbacks) -> list:
    """One EventClass per spec, with its handler (its own, else __sample__, else None)."""
    classes = []
    for spec in specs:
        handler = find_handler(module, spec.handler) if module is not None else None
        classes.append(event_class(spec, handler or callbacks.sample))
    return classes
