/*
 * Field decoding: a PerfEvent's fields become Python values only when a script reads them.
 * Built-ins (_pid, _time, ...) come from the event's header; the rest from the raw tracepoint
 * record as its format file lays it out, never read past the record's end.
 */
#include "ring.h"
#include "sample.h"

static PyObject *decode_int(const u8 *p, u32 size, int is_signed)
{
    switch (size) {
    case 1: return is_signed ? PyLong_FromLong(*(const int8_t *)p) : PyLong_FromUnsignedLong(*p);
    case 2: { u16 v; memcpy(&v, p, 2); return is_signed ? PyLong_FromLong((int16_t)v) : PyLong_FromUnsignedLong(v); }
    case 4: { u32 v; memcpy(&v, p, 4); return is_signed ? PyLong_FromLong((int32_t)v) : PyLong_FromUnsignedLong(v); }
    case 8: { u64 v; memcpy(&v, p, 8); return is_signed ? PyLong_FromLongLong((int64_t)v) : PyLong_FromUnsignedLongLong(v); }
    }
    return PyBytes_FromStringAndSize((const char *)p, size);
}

/* Bytes of a C string up to its NUL (or n) as str; bytes that are not UTF-8 are escaped. */
static PyObject *decode_cstr(const u8 *p, size_t n)
{
    const u8 *nul = memchr(p, 0, n);
    size_t len = nul ? (size_t)(nul - p) : n;
    return PyUnicode_DecodeUTF8((const char *)p, (Py_ssize_t)len, "backslashreplace");
}

/* Locate a __data_loc / __rel_loc payload; returns 0 and sets *ptr, *len if it fits the record. */
static int locate_dynamic(PerfEventObject *ev, const FieldDesc *d, const u8 **ptr, size_t *len)
{
    u32 loc;
    if (d->offset + 4 > ev->raw_size)
        return -1;
    memcpy(&loc, ev_raw(ev) + d->offset, 4);
    size_t off = loc & 0xffff, n = loc >> 16;
    if (d->kind == F_REL_STR || d->kind == F_REL_ARRAY)
        off += d->offset + 4;
    if (off > ev->raw_size)
        return -1;
    if (off + n > ev->raw_size)     /* truncated in the kernel (records over 4 KB) */
        n = ev->raw_size - off;
    *ptr = ev_raw(ev) + off;
    *len = n;
    return 0;
}

/* The value of descriptor d for event ev (a new reference), NULL with an exception set. */
PyObject *decode_field(PerfEventObject *ev, const FieldDesc *d)
{
    const u8 *p;
    size_t n;
    switch (d->kind) {
    case F_PID: return PyLong_FromUnsignedLong(ev->pid);
    case F_TID: return PyLong_FromUnsignedLong(ev->tid);
    case F_TIME: return PyLong_FromUnsignedLongLong(ev->time);
    case F_CPU: return PyLong_FromUnsignedLong(ev->cpu);
    case F_PERIOD: return PyLong_FromUnsignedLongLong(ev->period);
    case F_REALTIME: return PyLong_FromLongLong((long long)ev->time + realtime_offset);
    case F_EVENT: Py_INCREF(ev->cls->name); return ev->cls->name;
    case F_CALLCHAIN: return get_callchain(ev);
    case F_INT:
        if (d->offset + d->size > ev->raw_size)
            return PyLong_FromLong(0);
        return decode_int(ev_raw(ev) + d->offset, d->size, d->is_signed);
    case F_STR:
        if (d->offset + d->size > ev->raw_size)
            return PyUnicode_FromStringAndSize("", 0);
        return decode_cstr(ev_raw(ev) + d->offset, d->size);
    case F_ARRAY:
        if (d->offset + d->size > ev->raw_size)
            return PyBytes_FromStringAndSize("", 0);
        return PyBytes_FromStringAndSize((const char *)ev_raw(ev) + d->offset, d->size);
    case F_DYN_STR:
    case F_REL_STR:
        if (locate_dynamic(ev, d, &p, &n) < 0)
            return PyUnicode_FromStringAndSize("", 0);
        return decode_cstr(p, n);
    case F_DYN_ARRAY:
    case F_REL_ARRAY:
        if (locate_dynamic(ev, d, &p, &n) < 0)
            return PyBytes_FromStringAndSize("", 0);
        return PyBytes_FromStringAndSize((const char *)p, (Py_ssize_t)n);
    case F_SAMPLE:
        return decode_sample_member(ev, d);
    }
    PyErr_SetString(PyExc_SystemError, "ebpfprof: unknown field kind");
    return NULL;
}

/* Position of a field name, or -1 (no exception) when the event has no such field. */
Py_ssize_t field_position(PerfEventObject *ev, PyObject *name)
{
    const EventClassObject *cls = ev->cls;
    for (size_t slot = name_slot(name, cls->identity_mask);; slot = (slot + 1) & cls->identity_mask) {
        const NameSlot *e = &cls->by_identity[slot];
        if (e->name == name)
            return e->pos;
        if (!e->name)
            break;
    }
    PyObject *pos = PyDict_GetItemWithError(cls->index, name);
    if (!pos)
        return -1;
    return PyLong_AsSsize_t(pos);
}

