/*
 * ebpfprof._ring — the hot path: ring buffer → PerfEvent → the user's handler.
 *
 * Everything per event happens here, in C:
 *   - Reader.drain() walks BPF ring buffers (mmapped by us, no libbpf callback, no ctypes),
 *   - each record becomes a PerfEvent that owns a copy of its bytes (so scripts may keep it),
 *   - the handler chosen at start for its selector is called with vectorcall,
 *   - with --order, events wait in a queue per ring, sorted by time, until the caller's time
 *     horizon passes; the queues' heads are merged.
 * Fields are decoded only when a script reads them (PerfEvent.__getattr__ and friends).
 *
 * Everything that is not per event (which handler, what fields, how to print or symbolize)
 * is decided in Python and handed over as EventClass objects and hook functions.
 *
 * The record layout is struct ep_sample, from bpf/ep_sample.h (the BPF program's too).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <errno.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

/* ---------------------------------------------------------------------------------------- */
/* Record layout (bpf/ep_sample.h)                                                          */

#include "ep_sample.h"          /* struct ep_sample, shared with the BPF program */

/* BPF ring buffer record header (kernel/bpf/ringbuf.c) */
#define RB_BUSY_BIT    (1U << 31)
#define RB_DISCARD_BIT (1U << 30)
#define RB_HDR_SZ      8

/* ---------------------------------------------------------------------------------------- */
/* Field descriptors                                                                        */

enum field_kind {
    /* built-ins */
    F_PID, F_TID, F_TIME, F_CPU, F_PERIOD, F_REALTIME, F_EVENT, F_CALLCHAIN,
    /* from the tracepoint record */
    F_INT, F_STR, F_DYN_STR, F_REL_STR, F_ARRAY, F_DYN_ARRAY, F_REL_ARRAY,
};

typedef struct {
    int kind;
    u32 offset;
    u32 size;
    int is_signed;
} FieldDesc;

/* ---------------------------------------------------------------------------------------- */
/* Module state: hooks into Python and clock offset                                          */

static PyObject *hook_print = NULL;      /* print_event(event, timestamp, callchain) */
static PyObject *hook_callchain = NULL;  /* resolve_callchain(event_class, pid, frames_tuple) -> list */
static long long realtime_offset = 0;    /* CLOCK_REALTIME - CLOCK_MONOTONIC, ns */

/* ---------------------------------------------------------------------------------------- */
/* EventClass: one per selector                                                             */

/*
 * Field names by identity. The names in a script's code are interned, as are ours, so
 * event.field finds its position by pointer; other strings fall back to the index dict.
 */
typedef struct {
    PyObject *name;        /* borrowed from keys; NULL = empty slot */
    Py_ssize_t pos;
} NameSlot;

static inline size_t name_slot(PyObject *name, size_t mask)
{
    uintptr_t p = (uintptr_t)name;
    return ((p >> 4) ^ (p >> 12)) & mask;
}

typedef struct {
    PyObject_HEAD
    PyObject *name;        /* str: "sys:name" or "sys:alias" — the value of _event */
    PyObject *handler;     /* callable or None */
    PyObject *index;       /* dict: field name -> int position in descs */
    PyObject *keys;        /* tuple of field names in display order */
    PyObject *info;        /* anything Python wants to hang on it (format, selector) */
    FieldDesc *descs;
    Py_ssize_t nr_descs;
    NameSlot *by_identity; /* open-addressed table of the interned names in keys */
    size_t identity_mask;
    long long delivered;   /* events given to the handler */
    long long dropped;     /* events with no handler */
} EventClassObject;

static PyTypeObject EventClassType;

static const char *const builtin_names[] = {
    "_pid", "_tid", "_time", "_cpu", "_period", "_realtime", "_event", "_callchain",
};
#define NR_BUILTINS 8

static void eventclass_dealloc(EventClassObject *self)
{
    Py_XDECREF(self->name);
    Py_XDECREF(self->handler);
    Py_XDECREF(self->index);
    Py_XDECREF(self->keys);
    Py_XDECREF(self->info);
    PyMem_Free(self->descs);
    PyMem_Free(self->by_identity);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/*
 * EventClass(name, handler, fields, info)
 *   fields: sequence of (name, kind, offset, size, signed) for the tracepoint's own fields
 *           (common_* included), kind one of FIELD_* module constants.
 */
static int eventclass_init(EventClassObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "handler", "fields", "info", NULL};
    PyObject *name, *handler, *fields, *info = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "UOO|O", kwlist, &name, &handler, &fields, &info))
        return -1;
    PyObject *seq = PySequence_Fast(fields, "fields must be a sequence");
    if (!seq)
        return -1;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    Py_ssize_t total = NR_BUILTINS + n;
    FieldDesc *descs = PyMem_Calloc(total, sizeof(FieldDesc));
    PyObject *index = PyDict_New();
    PyObject *keys = PyTuple_New(total);
    if (!descs || !index || !keys)
        goto fail;
    for (int i = 0; i < NR_BUILTINS; i++) {
        PyObject *k = PyUnicode_InternFromString(builtin_names[i]);
        PyObject *v = PyLong_FromLong(i);
        if (!k || !v || PyDict_SetItem(index, k, v) < 0) {
            Py_XDECREF(k);
            Py_XDECREF(v);
            goto fail;
        }
        Py_DECREF(v);
        PyTuple_SET_ITEM(keys, i, k);
        descs[i].kind = i; /* F_PID .. F_CALLCHAIN in the same order */
    }
    for (Py_ssize_t j = 0; j < n; j++) {
        PyObject *item = PySequence_Fast_GET_ITEM(seq, j);
        PyObject *fname;
        int kind, is_signed;
        unsigned int offset, size;
        if (!PyArg_ParseTuple(item, "UiIIp", &fname, &kind, &offset, &size, &is_signed))
            goto fail;
        if (kind < F_INT || kind > F_REL_ARRAY) {
            PyErr_Format(PyExc_ValueError, "bad field kind %d", kind);
            goto fail;
        }
        Py_ssize_t pos = NR_BUILTINS + j;
        descs[pos].kind = kind;
        descs[pos].offset = offset;
        descs[pos].size = size;
        descs[pos].is_signed = is_signed;
        fname = PyUnicode_CheckExact(fname) ? Py_NewRef(fname) : PyUnicode_FromObject(fname);
        if (!fname)
            goto fail;
        PyUnicode_InternInPlace(&fname);
        PyObject *v = PyLong_FromSsize_t(pos);
        if (!v || PyDict_SetItem(index, fname, v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(fname);
            goto fail;
        }
        Py_DECREF(v);
        PyTuple_SET_ITEM(keys, pos, fname);
    }
    Py_DECREF(seq);
    size_t mask = 15;
    while (mask + 1 < 2 * (size_t)total)
        mask = mask * 2 + 1;
    NameSlot *table = PyMem_Calloc(mask + 1, sizeof(NameSlot));
    if (!table) {
        PyErr_NoMemory();
        PyMem_Free(descs);
        Py_DECREF(index);
        Py_DECREF(keys);
        return -1;
    }
    for (Py_ssize_t i = 0; i < total; i++) {
        PyObject *k = PyTuple_GET_ITEM(keys, i);
        size_t slot = name_slot(k, mask);
        while (table[slot].name && table[slot].name != k)
            slot = (slot + 1) & mask;
        table[slot].name = k;
        table[slot].pos = i;       /* a repeated name ends at its last position, as in index */
    }
    /* Install the new state whole, then release the old: dropping the old handler or info
     * can run Python code (__del__) that reads fields of events of this class. */
    PyObject *old[] = {self->name, self->handler, self->index, self->keys, self->info};
    FieldDesc *old_descs = self->descs;
    NameSlot *old_table = self->by_identity;
    self->name = Py_NewRef(name);
    self->handler = Py_NewRef(handler);
    self->index = index;
    self->keys = keys;
    self->info = Py_NewRef(info);
    self->descs = descs;
    self->nr_descs = total;
    self->by_identity = table;
    self->identity_mask = mask;
    PyMem_Free(old_descs);
    PyMem_Free(old_table);
    for (size_t i = 0; i < sizeof(old) / sizeof(old[0]); i++)
        Py_XDECREF(old[i]);
    return 0;
fail:
    Py_DECREF(seq);
    PyMem_Free(descs);
    Py_XDECREF(index);
    Py_XDECREF(keys);
    return -1;
}

/* Made by EventClass.__new__ without __init__: no fields, no name table. Events refuse it. */
static int eventclass_ready(EventClassObject *cls)
{
    return cls->descs != NULL && cls->by_identity != NULL && cls->name != NULL;
}

static PyMemberDef eventclass_members[] = {
    {"name", T_OBJECT_EX, offsetof(EventClassObject, name), READONLY, "the value of _event"},
    {"handler", T_OBJECT_EX, offsetof(EventClassObject, handler), 0, "callable or None"},
    {"keys", T_OBJECT_EX, offsetof(EventClassObject, keys), READONLY, "field names, display order"},
    {"info", T_OBJECT_EX, offsetof(EventClassObject, info), 0, "Python-side description"},
    {"delivered", T_LONGLONG, offsetof(EventClassObject, delivered), READONLY, "events handled"},
    {"dropped", T_LONGLONG, offsetof(EventClassObject, dropped), READONLY, "events without handler"},
    {NULL},
};

static PyTypeObject EventClassType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ebpfprof._ring.EventClass",
    .tp_basicsize = sizeof(EventClassObject),
    .tp_dealloc = (destructor)eventclass_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "How events of one selector are decoded and to whom they go.",
    .tp_members = eventclass_members,
    .tp_init = (initproc)eventclass_init,
    .tp_new = PyType_GenericNew,
};

/* ---------------------------------------------------------------------------------------- */
/* PerfEvent                                                                                */

typedef struct {
    PyObject_VAR_HEAD
    EventClassObject *cls;
    PyObject *callchain;   /* resolved on first access */
    u64 time;
    u32 pid, tid, cpu;
    u32 raw_size;
    u32 nr_frames;
    /* raw record (raw_size bytes, padded to 8) then nr_frames u64 */
    u64 data[1];
} PerfEventObject;

static PyTypeObject PerfEventType;

static inline const u8 *ev_raw(PerfEventObject *ev)
{
    return (const u8 *)ev->data;
}

static inline const u64 *ev_frames(PerfEventObject *ev)
{
    return (const u64 *)((const u8 *)ev->data + (((size_t)ev->raw_size + 7) & ~(size_t)7));
}

/* u64 items of data (beyond the first, which is in the base size) a record needs. */
static inline Py_ssize_t event_items(const struct ep_sample *s)
{
    size_t bytes = (((size_t)s->raw_size + 7) & ~(size_t)7) + (size_t)s->nr_frames * 8;
    return bytes > 8 ? (Py_ssize_t)((bytes + 7) / 8 - 1) : 0;
}

/* Fill an event (new, or recycled with room enough) from a record. */
/* The sample header's part of an event; its bytes are copied by the callers. */
static inline void fill_header(PerfEventObject *ev, const struct ep_sample *s)
{
    ev->time = s->time;
    ev->pid = s->pid;
    ev->tid = s->tid;
    ev->cpu = s->cpu;
    ev->raw_size = s->raw_size;
    ev->nr_frames = s->nr_frames;
}

static void perf_event_fill(PerfEventObject *ev, const struct ep_sample *s, const u8 *raw,
                            const u64 *frames)
{
    size_t raw_padded = ((size_t)s->raw_size + 7) & ~(size_t)7;
    fill_header(ev, s);
    if (s->raw_size) {
        ev->data[raw_padded / 8 - 1] = 0;   /* the padding after the record reads as zeros */
        memcpy(ev->data, raw, s->raw_size);
    }
    if (s->nr_frames)
        memcpy((u8 *)ev->data + raw_padded, frames, (size_t)s->nr_frames * 8);
}

/* A new event of class cls with room for record s; its contents are the caller's to fill. */
static PerfEventObject *perf_event_alloc(EventClassObject *cls, const struct ep_sample *s)
{
    PerfEventObject *ev = PyObject_NewVar(PerfEventObject, &PerfEventType, event_items(s));
    if (!ev)
        return NULL;
    Py_INCREF(cls);
    ev->cls = cls;
    ev->callchain = NULL;
    return ev;
}

/* A new event owning a copy of the record's raw part and frames. */
static PerfEventObject *perf_event_new(EventClassObject *cls, const struct ep_sample *s,
                                       const u8 *raw, const u64 *frames)
{
    PerfEventObject *ev = perf_event_alloc(cls, s);
    if (ev)
        perf_event_fill(ev, s, raw, frames);
    return ev;
}

static void perf_event_dealloc(PerfEventObject *ev)
{
    Py_DECREF(ev->cls);
    Py_XDECREF(ev->callchain);
    PyObject_Free(ev);
}

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

/* The event's raw callchain (context markers included) as a tuple of int. */
static PyObject *frames_tuple(PerfEventObject *ev)
{
    PyObject *t = PyTuple_New(ev->nr_frames);
    if (!t)
        return NULL;
    const u64 *f = ev_frames(ev);
    for (u32 i = 0; i < ev->nr_frames; i++) {
        PyObject *v = PyLong_FromUnsignedLongLong(f[i]);
        if (!v) {
            Py_DECREF(t);
            return NULL;
        }
        PyTuple_SET_ITEM(t, i, v);
    }
    return t;
}

static PyObject *get_callchain(PerfEventObject *ev)
{
    if (ev->callchain) {
        Py_INCREF(ev->callchain);
        return ev->callchain;
    }
    if (ev->nr_frames == 0 || !hook_callchain)
        return PyList_New(0);
    PyObject *frames = frames_tuple(ev);
    if (!frames)
        return NULL;
    PyObject *pid = PyLong_FromUnsignedLong(ev->pid);
    PyObject *res = pid ? PyObject_CallFunctionObjArgs(hook_callchain, (PyObject *)ev->cls, pid, frames, NULL) : NULL;
    Py_XDECREF(pid);
    Py_DECREF(frames);
    if (!res)
        return NULL;
    ev->callchain = res;
    Py_INCREF(res);
    return res;
}

/* The value of descriptor d for event ev (a new reference), NULL with an exception set. */
static PyObject *decode_field(PerfEventObject *ev, const FieldDesc *d)
{
    const u8 *p;
    size_t n;
    switch (d->kind) {
    case F_PID: return PyLong_FromUnsignedLong(ev->pid);
    case F_TID: return PyLong_FromUnsignedLong(ev->tid);
    case F_TIME: return PyLong_FromUnsignedLongLong(ev->time);
    case F_CPU: return PyLong_FromUnsignedLong(ev->cpu);
    case F_PERIOD: return PyLong_FromLong(1);
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
    }
    PyErr_SetString(PyExc_SystemError, "ebpfprof: unknown field kind");
    return NULL;
}

/* Position of a field name, or -1 (no exception) when the event has no such field. */
static Py_ssize_t field_position(PerfEventObject *ev, PyObject *name)
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

static PyObject *perf_event_getattro(PerfEventObject *ev, PyObject *name)
{
    Py_ssize_t pos = field_position(ev, name);
    if (pos >= 0)
        return decode_field(ev, &ev->cls->descs[pos]);
    if (PyErr_Occurred())
        return NULL;
    PyObject *res = PyObject_GenericGetAttr((PyObject *)ev, name);
    if (!res && PyErr_ExceptionMatches(PyExc_AttributeError)) {
        PyErr_Clear();
        PyErr_Format(PyExc_AttributeError, "%U event has no field '%U'", ev->cls->name, name);
    }
    return res;
}

static int perf_event_setattro(PerfEventObject *ev, PyObject *name, PyObject *value)
{
    PyErr_Format(PyExc_AttributeError, "PerfEvent fields are read-only (setting '%U'); "
                 "copy with to_dict() to change values", name);
    return -1;
}

static PyObject *perf_event_subscript(PerfEventObject *ev, PyObject *key)
{
    if (!PyUnicode_Check(key)) {
        PyErr_SetObject(PyExc_KeyError, key);
        return NULL;
    }
    Py_ssize_t pos = field_position(ev, key);
    if (pos >= 0)
        return decode_field(ev, &ev->cls->descs[pos]);
    if (!PyErr_Occurred())
        PyErr_SetObject(PyExc_KeyError, key);
    return NULL;
}

static int perf_event_contains(PerfEventObject *ev, PyObject *key)
{
    if (!PyUnicode_Check(key))
        return 0;
    Py_ssize_t pos = field_position(ev, key);
    if (pos >= 0)
        return 1;
    return PyErr_Occurred() ? -1 : 0;
}

static Py_ssize_t perf_event_length(PerfEventObject *ev)
{
    return ev->cls->nr_descs;
}

static PyObject *perf_event_get(PerfEventObject *ev, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "get(field, default=None)");
        return NULL;
    }
    if (PyUnicode_Check(args[0])) {
        Py_ssize_t pos = field_position(ev, args[0]);
        if (pos >= 0)
            return decode_field(ev, &ev->cls->descs[pos]);
        if (PyErr_Occurred())
            return NULL;
    }
    PyObject *dflt = nargs == 2 ? args[1] : Py_None;
    Py_INCREF(dflt);
    return dflt;
}

static PyObject *perf_event_keys(PerfEventObject *ev, PyObject *unused)
{
    return PySequence_List(ev->cls->keys);
}

static PyObject *perf_event_values(PerfEventObject *ev, PyObject *unused)
{
    Py_ssize_t n = ev->cls->nr_descs;
    PyObject *list = PyList_New(n);
    if (!list)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = decode_field(ev, &ev->cls->descs[i]);
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, v);
    }
    return list;
}

static PyObject *perf_event_items(PerfEventObject *ev, PyObject *unused)
{
    Py_ssize_t n = ev->cls->nr_descs;
    PyObject *list = PyList_New(n);
    if (!list)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = decode_field(ev, &ev->cls->descs[i]);
        if (!v) {
            Py_DECREF(list);
            return NULL;
        }
        PyObject *k = PyTuple_GET_ITEM(ev->cls->keys, i);
        Py_INCREF(k);
        PyObject *pair = PyTuple_Pack(2, k, v);
        Py_DECREF(k);
        Py_DECREF(v);
        if (!pair) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, i, pair);
    }
    return list;
}

static PyObject *perf_event_to_dict(PerfEventObject *ev, PyObject *unused)
{
    Py_ssize_t n = ev->cls->nr_descs;
    PyObject *dict = _PyDict_NewPresized(n);
    if (!dict)
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *v = decode_field(ev, &ev->cls->descs[i]);
        if (!v || PyDict_SetItem(dict, PyTuple_GET_ITEM(ev->cls->keys, i), v) < 0) {
            Py_XDECREF(v);
            Py_DECREF(dict);
            return NULL;
        }
        Py_DECREF(v);
    }
    return dict;
}

static PyObject *perf_event_iter(PerfEventObject *ev)
{
    PyObject *items = perf_event_items(ev, NULL);
    if (!items)
        return NULL;
    PyObject *it = PyObject_GetIter(items);
    Py_DECREF(items);
    return it;
}

static PyObject *perf_event_str(PerfEventObject *ev)
{
    PyObject *d = perf_event_to_dict(ev, NULL);
    if (!d)
        return NULL;
    PyObject *s = PyObject_Repr(d);
    Py_DECREF(d);
    return s;
}

static PyObject *perf_event_repr(PerfEventObject *ev)
{
    return PyUnicode_FromFormat("<PerfEvent %U cpu=%u pid=%u time=%llu>", ev->cls->name,
                                ev->cpu, ev->pid, (unsigned long long)ev->time);
}

static Py_hash_t perf_event_hash(PerfEventObject *ev)
{
    /* Stable for the event's identity in the stream: when, where, who, which selector. */
    u64 h = ev->time * 0x9E3779B97F4A7C15ULL;
    h ^= ((u64)ev->cpu << 32 | ev->tid) + 0x7F4A7C159E3779B9ULL + (h << 6) + (h >> 2);
    h ^= (u64)(uintptr_t)ev->cls;
    Py_hash_t r = (Py_hash_t)(h ^ (h >> 31));
    return r == -1 ? -2 : r;
}

static PyObject *perf_event_print(PerfEventObject *ev, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"timestamp", "callchain", NULL};
    int timestamp = 1, callchain = 1;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pp", kwlist, &timestamp, &callchain))
        return NULL;
    if (!hook_print) {
        PyErr_SetString(PyExc_RuntimeError, "ebpfprof: no printer installed");
        return NULL;
    }
    return PyObject_CallFunction(hook_print, "OOO", (PyObject *)ev,
                                 timestamp ? Py_True : Py_False, callchain ? Py_True : Py_False);
}

static PyObject *perf_event_reduce(PerfEventObject *ev, PyObject *unused)
{
    /* Pickling gives the plain dict: an event cannot be rebuilt without its run. */
    PyObject *d = perf_event_to_dict(ev, NULL);
    if (!d)
        return NULL;
    PyObject *r = Py_BuildValue("(O(O))", (PyObject *)&PyDict_Type, d);
    Py_DECREF(d);
    return r;
}

static PyMethodDef perf_event_methods[] = {
    {"get", (PyCFunction)(void (*)(void))perf_event_get, METH_FASTCALL,
     "get(field, default=None): the field's value, or default if the event has no such field"},
    {"keys", (PyCFunction)perf_event_keys, METH_NOARGS, "field names, built-ins first"},
    {"values", (PyCFunction)perf_event_values, METH_NOARGS, "field values, in keys() order"},
    {"items", (PyCFunction)perf_event_items, METH_NOARGS, "(name, value) pairs, in keys() order"},
    {"to_dict", (PyCFunction)perf_event_to_dict, METH_NOARGS, "every field decoded into a new dict"},
    {"print", (PyCFunction)(void (*)(void))perf_event_print, METH_VARARGS | METH_KEYWORDS,
     "print(timestamp=True, callchain=True): one line in the perf/ftrace layout, then one per frame"},
    {"__reduce__", (PyCFunction)perf_event_reduce, METH_NOARGS, NULL},
    {NULL},
};

static PySequenceMethods perf_event_as_sequence = {
    .sq_length = (lenfunc)perf_event_length,
    .sq_contains = (objobjproc)perf_event_contains,
};

static PyMappingMethods perf_event_as_mapping = {
    .mp_length = (lenfunc)perf_event_length,
    .mp_subscript = (binaryfunc)perf_event_subscript,
};

static PyTypeObject PerfEventType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ebpfprof.PerfEvent",
    .tp_basicsize = offsetof(PerfEventObject, data) + sizeof(u64),
    .tp_itemsize = sizeof(u64),
    .tp_dealloc = (destructor)perf_event_dealloc,
    .tp_repr = (reprfunc)perf_event_repr,
    .tp_str = (reprfunc)perf_event_str,
    .tp_hash = (hashfunc)perf_event_hash,
    .tp_as_sequence = &perf_event_as_sequence,
    .tp_as_mapping = &perf_event_as_mapping,
    .tp_getattro = (getattrofunc)perf_event_getattro,
    .tp_setattro = (setattrofunc)perf_event_setattro,
    .tp_iter = (getiterfunc)perf_event_iter,
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .tp_doc = "One event; its fields are decoded when read. See docs/perfevent.md.",
    .tp_methods = perf_event_methods,
};

/* ---------------------------------------------------------------------------------------- */
/* Handler errors: print the traceback, go on; rate-limited so a failing handler at 1M       */
/* events/s does not drown the terminal.                                                   */

#define ERRORS_PER_SECOND 10

static struct {
    time_t second;
    int printed;
    long long suppressed;
    long long total;
} handler_errors;

/* Returns -1 when the run must stop (SystemExit, KeyboardInterrupt), 0 to go on. */
static int handle_handler_error(void)
{
    if (PyErr_ExceptionMatches(PyExc_SystemExit) || PyErr_ExceptionMatches(PyExc_KeyboardInterrupt))
        return -1;
    handler_errors.total++;
    time_t now = time(NULL);
    if (now != handler_errors.second) {
        if (handler_errors.suppressed)
            PySys_FormatStderr("ebpfprof: %lld more handler exceptions not shown\n",
                               handler_errors.suppressed);
        handler_errors.second = now;
        handler_errors.printed = 0;
        handler_errors.suppressed = 0;
    }
    if (handler_errors.printed < ERRORS_PER_SECOND) {
        handler_errors.printed++;
        PyErr_PrintEx(0);
    } else {
        handler_errors.suppressed++;
        PyErr_Clear();
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Reader: rings, ordering queues, dispatch                                                  */

/* --order: an event, or a loss marker, waiting for its time to come. */
typedef struct {
    u64 time;
    u64 seq;               /* arrival order: ties on time keep it */
    PyObject *ev;          /* a PerfEvent, or NULL for a loss marker */
    u64 lost;              /* loss marker: how many */
    u64 lost_start;        /* loss marker: time of the last event before the gap */
} Pending;

/*
 * A ring's pending entries, sorted by (time, seq), in a circular array. A ring's records come
 * nearly in time order (a program stamps its record just before it reserves or writes it, and
 * programs do not nest on a CPU), so an entry goes in from the back, past the few newer ones;
 * the oldest leaves from the front. Inserting costs as many steps as entries it passes: fine
 * for this, not for a ring whose records could arrive far out of time order.
 */
typedef struct {
    Pending *items;
    size_t head, len, cap;     /* cap: 0 or a power of two */
} OrderQueue;

typedef struct {
    int map_fd;
    size_t data_size;          /* power of two */
    size_t page_size;
    volatile u64 *consumer;    /* consumer page (rw) */
    volatile u64 *producer;    /* producer page (ro) */
    const u8 *data;            /* data pages, mapped twice back to back */
    size_t prod_map_len;
    OrderQueue order;          /* --order: this ring's records waiting for the horizon */
} BpfRing;

#define MAX_TRACKED_CPUS 4096

typedef struct {
    PyObject_HEAD
    PyObject *classes;         /* tuple of EventClass */
    PyObject *lost_handler;    /* the script's __lost__(start, end), or None */
    BpfRing *rings;
    int nr_rings;
    /* ordering (the queues are in the rings) */
    u64 seq;
    u64 last_time[MAX_TRACKED_CPUS];  /* ordered mode, per CPU: time of the last record (loss bounds) */
    /* accounting */
    long long delivered;       /* events given to a handler */
    long long records;         /* records read from rings */
    long long lost;            /* records the kernel could not write */
    long long budget;          /* events still to deliver (-N), -1 = unlimited */
    int stop;                  /* set by stop(): drain returns at the next record */
    int draining;              /* in drain(): handlers run; the rings must stay as they are */
    PerfEventObject *spare;    /* the last event, if its handler did not keep it: reused */
} ReaderObject;

static PyTypeObject ReaderType;

static void ring_unmap(BpfRing *r)
{
    if (r->consumer && r->consumer != MAP_FAILED)
        munmap((void *)r->consumer, r->page_size);
    if (r->producer && r->producer != MAP_FAILED)
        munmap((void *)r->producer, r->prod_map_len);
    r->consumer = NULL;
    r->producer = NULL;
}

static void queue_clear(OrderQueue *q)
{
    for (size_t i = 0; i < q->len; i++)
        Py_XDECREF(q->items[(q->head + i) & (q->cap - 1)].ev);
    PyMem_Free(q->items);
    *q = (OrderQueue){0};
}

static void ring_release(BpfRing *r)
{
    queue_clear(&r->order);
    ring_unmap(r);
}

static void reader_dealloc(ReaderObject *self)
{
    Py_CLEAR(self->spare);
    for (int i = 0; i < self->nr_rings; i++)
        ring_release(&self->rings[i]);
    PyMem_Free(self->rings);
    Py_XDECREF(self->classes);
    Py_XDECREF(self->lost_handler);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Reader(classes, lost_handler=None) */
static int reader_init(ReaderObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"classes", "lost_handler", NULL};
    PyObject *classes, *lost_handler = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "O|O", kwlist, &classes, &lost_handler))
        return -1;
    PyObject *t = PySequence_Tuple(classes);
    if (!t)
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(t); i++) {
        PyObject *c = PyTuple_GET_ITEM(t, i);
        if (!PyObject_TypeCheck(c, &EventClassType) || !eventclass_ready((EventClassObject *)c)) {
            Py_DECREF(t);
            PyErr_SetString(PyExc_TypeError, "classes must be initialised EventClass objects");
            return -1;
        }
    }
    Py_XSETREF(self->classes, t);
    Py_INCREF(lost_handler);
    Py_XSETREF(self->lost_handler, lost_handler);
    self->budget = -1;
    return 0;
}

/* drain(), close() and add_bpf_ring() are refused from inside a handler: records being read
 * would be freed, moved or handed back to the kernel under the drain's feet. */
static int refuse_while_draining(ReaderObject *self, const char *what)
{
    if (!self->draining)
        return 0;
    PyErr_Format(PyExc_RuntimeError, "Reader.%s() cannot be called while it drains (from a handler)", what);
    return -1;
}

/* add_bpf_ring(map_fd, data_size): mmap a BPF_MAP_TYPE_RINGBUF the way libbpf does. */
static PyObject *reader_add_bpf_ring(ReaderObject *self, PyObject *args)
{
    int fd;
    Py_ssize_t data_size;
    if (!PyArg_ParseTuple(args, "in", &fd, &data_size))
        return NULL;
    if (refuse_while_draining(self, "add_bpf_ring") < 0)
        return NULL;
    if (data_size <= 0 || (data_size & (data_size - 1))) {
        PyErr_SetString(PyExc_ValueError, "ring size must be a power of two");
        return NULL;
    }
    BpfRing r = {0};
    r.map_fd = fd;
    r.data_size = (size_t)data_size;
    r.page_size = (size_t)sysconf(_SC_PAGESIZE);
    r.consumer = mmap(NULL, r.page_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (r.consumer == MAP_FAILED) {
        r.consumer = NULL;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    r.prod_map_len = r.page_size + 2 * r.data_size;
    r.producer = mmap(NULL, r.prod_map_len, PROT_READ, MAP_SHARED, fd, (off_t)r.page_size);
    if (r.producer == MAP_FAILED) {
        r.producer = NULL;
        int saved = errno;
        ring_unmap(&r);
        errno = saved;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    r.data = (const u8 *)r.producer + r.page_size;
    BpfRing *rings = PyMem_Realloc(self->rings, sizeof(BpfRing) * (self->nr_rings + 1));
    if (!rings) {
        ring_unmap(&r);
        return PyErr_NoMemory();
    }
    self->rings = rings;
    self->rings[self->nr_rings++] = r;
    Py_RETURN_NONE;
}

static inline int pending_before(const Pending *a, const Pending *b)
{
    return a->time < b->time || (a->time == b->time && a->seq < b->seq);
}

static inline Pending *queue_at(const OrderQueue *q, size_t i)
{
    return &q->items[(q->head + i) & (q->cap - 1)];
}

static int queue_insert(OrderQueue *q, Pending e)
{
    if (q->len == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 4096;
        Pending *items = PyMem_Malloc(cap * sizeof(Pending));
        if (!items) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t i = 0; i < q->len; i++)
            items[i] = *queue_at(q, i);
        PyMem_Free(q->items);
        q->items = items;
        q->head = 0;
        q->cap = cap;
    }
    size_t i = q->len;
    while (i > 0 && pending_before(&e, queue_at(q, i - 1))) {
        *queue_at(q, i) = *queue_at(q, i - 1);
        i--;
    }
    *queue_at(q, i) = e;
    q->len++;
    return 0;
}

static Pending queue_pop(OrderQueue *q)
{
    Pending e = *queue_at(q, 0);
    q->head = (q->head + 1) & (q->cap - 1);
    q->len--;
    return e;
}

/* The queue whose head is the oldest pending entry of all rings, or NULL if none waits.
 * One ring today; a linear scan stays cheap for a few rings (a heap of heads beyond that). */
static OrderQueue *oldest_queue(ReaderObject *self)
{
    OrderQueue *best = NULL;
    for (int i = 0; i < self->nr_rings; i++) {
        OrderQueue *q = &self->rings[i].order;
        if (q->len && (!best || pending_before(queue_at(q, 0), queue_at(best, 0))))
            best = q;
    }
    return best;
}

static int call_lost(ReaderObject *self, u64 lost, u64 start, u64 end)
{
    self->lost += (long long)lost;
    if (self->lost_handler == Py_None)
        return 0;
    PyObject *r = PyObject_CallFunction(self->lost_handler, "KK", (unsigned long long)start,
                                        (unsigned long long)end);
    if (!r)
        return handle_handler_error();
    Py_DECREF(r);
    return 0;
}

/* Call the handler (not None) of an event's class. -1 to stop the drain (exception to propagate). */
static inline int call_handler(ReaderObject *self, EventClassObject *cls, PerfEventObject *ev)
{
    PyObject *arg = (PyObject *)ev;
    PyObject *handler = Py_NewRef(cls->handler);   /* the call may replace cls.handler */
    PyObject *r = PyObject_Vectorcall(handler, &arg, 1, NULL);
    Py_DECREF(handler);
    cls->delivered++;
    self->delivered++;
    if (self->budget > 0)
        self->budget--;
    if (!r)
        return handle_handler_error();
    Py_DECREF(r);
    return 0;
}

/* Give one event to its handler, if its class has one. */
static int deliver(ReaderObject *self, PerfEventObject *ev)
{
    EventClassObject *cls = ev->cls;
    if (cls->handler == Py_None) {
        cls->dropped++;
        return 0;
    }
    return call_handler(self, cls, ev);
}

/*
 * A record's sample header if the record is whole and ours, else NULL (skipped rather than
 * misdecoded). Records sit 8-aligned in the ring, so the header is read in place.
 */
static inline const struct ep_sample *record_sample(ReaderObject *self, const u8 *rec, u32 len)
{
    if (len < sizeof(struct ep_sample))
        return NULL;
    const struct ep_sample *s = (const struct ep_sample *)rec;
    size_t raw_padded = ((size_t)s->raw_size + 7) & ~(size_t)7;
    size_t need = sizeof(*s) + (s->nr_frames ? raw_padded + (size_t)s->nr_frames * 8 : s->raw_size);
    if (need > len || s->selector >= PyTuple_GET_SIZE(self->classes))
        return NULL;
    return s;
}

/*
 * Copy a record's raw part (and frames) from the ring into an event with room for them. The
 * ring keeps records 8-byte padded, so whole words are read; the bytes past raw_size in the
 * last word are cleared (they read as zeros, as with perf_event_fill).
 */
static inline void fill_from_ring(PerfEventObject *ev, const struct ep_sample *s)
{
    const u64 *src = (const u64 *)(s + 1);
    u32 raw_size = s->raw_size;
    size_t words = ((size_t)raw_size + 7) / 8;
    fill_header(ev, s);
    for (size_t i = 0; i < words; i++)
        ev->data[i] = src[i];
    if (raw_size & 7) {     /* keep the raw_size & 7 bytes that come first in memory */
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        ev->data[words - 1] &= ~(u64)0 << (64 - 8 * (raw_size & 7));
#else
        ev->data[words - 1] &= ~(u64)0 >> (64 - 8 * (raw_size & 7));
#endif
    }
    if (s->nr_frames)
        memcpy(ev->data + words, src + words, (size_t)s->nr_frames * 8);
}

/*
 * Unordered mode: one record straight to its handler, in a recycled event when the last
 * handler did not keep its own. Returns -1 on a Python error that must stop the drain.
 */
static inline int record_now(ReaderObject *self, const struct ep_sample *s)
{
    EventClassObject *cls = (EventClassObject *)PyTuple_GET_ITEM(self->classes, s->selector);
    if (s->lost && call_lost(self, s->lost, 0, 0) < 0)
        return -1;
    if (cls->handler == Py_None) {
        cls->dropped++;
        return 0;
    }
    PerfEventObject *ev = self->spare;
    if (ev && Py_SIZE(ev) >= event_items(s)) {
        self->spare = NULL;      /* nobody else holds it (checked when it was kept) */
        if (ev->cls != cls) {
            Py_INCREF(cls);
            Py_SETREF(ev->cls, cls);
        }
    } else if (!(ev = perf_event_alloc(cls, s))) {
        return -1;
    }
    fill_from_ring(ev, s);
    int rc = call_handler(self, cls, ev);
    if (Py_REFCNT(ev) == 1 && !self->spare) {
        Py_CLEAR(ev->callchain);
        self->spare = ev;        /* the handler did not keep it */
    } else {
        Py_DECREF(ev);
    }
    return rc;
}

/* Ordered mode: the record joins its ring's queue (after its loss marker, if it carries one). */
static int record_to_queue(ReaderObject *self, OrderQueue *q, const struct ep_sample *s)
{
    u32 cpu_slot = s->cpu < MAX_TRACKED_CPUS ? s->cpu : MAX_TRACKED_CPUS - 1;
    u64 prev_time = self->last_time[cpu_slot];
    self->last_time[cpu_slot] = s->time;
    if (s->lost) {
        Pending m = {.time = s->time, .seq = self->seq++, .ev = NULL, .lost = s->lost,
                     .lost_start = prev_time};
        if (queue_insert(q, m) < 0)
            return -1;
    }
    EventClassObject *cls = (EventClassObject *)PyTuple_GET_ITEM(self->classes, s->selector);
    if (cls->handler == Py_None) {
        cls->dropped++;
        return 0;
    }
    const u8 *raw = (const u8 *)(s + 1);
    PerfEventObject *ev = perf_event_new(cls, s, raw, (const u64 *)(raw + (((size_t)s->raw_size + 7) & ~(size_t)7)));
    if (!ev)
        return -1;
    Pending e = {.time = s->time, .seq = self->seq++, .ev = (PyObject *)ev};
    if (queue_insert(q, e) < 0) {
        Py_DECREF(ev);
        return -1;
    }
    return 0;
}

static inline u64 load_acquire(volatile u64 *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline u32 load_acquire32(const volatile u32 *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void store_release(volatile u64 *p, u64 v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

#define SIGNAL_CHECK_EVERY 1024
#define PREFETCH_AHEAD     2048   /* bytes of records asked for ahead of the one being read */
#define CACHE_LINE         64

/* Read what one ring holds now, until the budget is spent or stop is set. -1 on error. */
static int drain_ring(ReaderObject *self, BpfRing *r, int ordered, long long *count)
{
    u64 cons = load_acquire(r->consumer);
    u64 prod = load_acquire(r->producer);
    u64 mask = r->data_size - 1;
    const u8 *data = r->data;
    /* Records were written by another CPU: ask for every line of the committed part ahead of
     * the reader once, and never past prod (lines still being written stay the producer's). */
    u64 fetched = cons & ~(u64)(CACHE_LINE - 1);
    int rc = 0;
    while (cons < prod && !self->stop && self->budget != 0) {
        u64 ahead = cons + PREFETCH_AHEAD < prod ? cons + PREFETCH_AHEAD : prod;
        if (fetched < cons)         /* a record longer than PREFETCH_AHEAD went by */
            fetched = cons & ~(u64)(CACHE_LINE - 1);
        for (; fetched < ahead; fetched += CACHE_LINE)
            __builtin_prefetch(data + (fetched & mask));
        const volatile u32 *hdr = (const volatile u32 *)(data + (cons & mask));
        u32 len = load_acquire32(hdr);
        if (len & RB_BUSY_BIT)
            break;  /* reserved, not yet committed: come back later */
        u32 size = len & ~(RB_BUSY_BIT | RB_DISCARD_BIT);
        if (!(len & RB_DISCARD_BIT)) {
            const struct ep_sample *s = record_sample(self, (const u8 *)hdr + RB_HDR_SZ, size);
            if (s) {
                self->records++;
                rc = ordered ? record_to_queue(self, &r->order, s) : record_now(self, s);
            }
        }
        cons += (RB_HDR_SZ + size + 7) & ~(u64)7;
        (*count)++;
        if (rc < 0)
            break;
        if ((*count & (SIGNAL_CHECK_EVERY - 1)) == 0) {
            store_release(r->consumer, cons);
            if (PyErr_CheckSignals() < 0) {
                rc = -1;
                break;
            }
        }
        /* prod is not re-read: one drain takes what was there when it began, so the Python
         * loop gets control back (timers, signals) even when producers never pause. */
    }
    store_release(r->consumer, cons);
    return rc;
}

/* Deliver pending entries, oldest first, up to time horizon (all of them with all). */
static int flush_pending(ReaderObject *self, u64 horizon, int all)
{
    OrderQueue *q;
    while (!self->stop && self->budget != 0 && (q = oldest_queue(self))) {
        if (!all && queue_at(q, 0)->time > horizon)
            break;
        Pending e = queue_pop(q);
        int rc;
        if (!e.ev) {
            rc = call_lost(self, e.lost, e.lost_start, e.time);
        } else {
            rc = deliver(self, (PerfEventObject *)e.ev);
            Py_DECREF(e.ev);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/*
 * drain(ordered=False, horizon=0, flush=False) -> records read
 * Ordered: records join their ring's queue; those with time <= horizon (all, with flush) are
 * delivered, oldest first across rings.
 */
static PyObject *reader_drain(ReaderObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"ordered", "horizon", "flush", NULL};
    int ordered = 0, flush = 0;
    unsigned long long horizon = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|pKp", kwlist, &ordered, &horizon, &flush))
        return NULL;
    if (refuse_while_draining(self, "drain") < 0)
        return NULL;
    long long count = 0;
    int rc = 0;
    self->draining = 1;
    for (int i = 0; i < self->nr_rings && rc == 0; i++)
        rc = drain_ring(self, &self->rings[i], ordered, &count);
    if (rc == 0 && ordered)
        rc = flush_pending(self, horizon, flush);
    self->draining = 0;
    return rc < 0 ? NULL : PyLong_FromLongLong(count);
}

static PyObject *reader_close(ReaderObject *self, PyObject *unused)
{
    if (refuse_while_draining(self, "close") < 0)
        return NULL;
    for (int i = 0; i < self->nr_rings; i++)
        ring_release(&self->rings[i]);
    self->nr_rings = 0;
    Py_CLEAR(self->spare);
    Py_RETURN_NONE;
}

static PyObject *reader_stop(ReaderObject *self, PyObject *unused)
{
    self->stop = 1;
    Py_RETURN_NONE;
}

static PyObject *reader_pending(ReaderObject *self, void *closure)
{
    size_t n = 0;
    for (int i = 0; i < self->nr_rings; i++)
        n += self->rings[i].order.len;
    return PyLong_FromSize_t(n);
}

static PyObject *reader_get_budget(ReaderObject *self, void *closure)
{
    return PyLong_FromLongLong(self->budget);
}

static int reader_set_budget(ReaderObject *self, PyObject *v, void *closure)
{
    long long b = PyLong_AsLongLong(v);
    if (b == -1 && PyErr_Occurred())
        return -1;
    self->budget = b;
    return 0;
}

static PyObject *reader_last_time(ReaderObject *self, void *closure)
{
    u64 t = 0;
    for (int i = 0; i < MAX_TRACKED_CPUS; i++)
        if (self->last_time[i] > t)
            t = self->last_time[i];
    return PyLong_FromUnsignedLongLong(t);
}

static PyGetSetDef reader_getset[] = {
    {"last_time", (getter)reader_last_time, NULL, "timestamp of the newest record read in ordered mode (loss bounds; 0 otherwise)", NULL},
    {"pending", (getter)reader_pending, NULL, "events and loss markers waiting for --order", NULL},
    {"budget", (getter)reader_get_budget, (setter)reader_set_budget,
     "events still to deliver before stopping (-N); -1 = no limit", NULL},
    {NULL},
};

static PyMemberDef reader_members[] = {
    {"delivered", T_LONGLONG, offsetof(ReaderObject, delivered), READONLY, "events given to handlers"},
    {"records", T_LONGLONG, offsetof(ReaderObject, records), READONLY, "records read from rings"},
    {"lost", T_LONGLONG, offsetof(ReaderObject, lost), 0, "records the kernel could not write"},
    {NULL},
};

static PyMethodDef reader_methods[] = {
    {"add_bpf_ring", (PyCFunction)reader_add_bpf_ring, METH_VARARGS,
     "add_bpf_ring(map_fd, data_size): read this BPF ring buffer map"},
    {"drain", (PyCFunction)(void (*)(void))reader_drain, METH_VARARGS | METH_KEYWORDS,
     "drain(ordered=False, horizon=0, flush=False) -> records read"},
    {"stop", (PyCFunction)reader_stop, METH_NOARGS, "make drain() return at the next record"},
    {"close", (PyCFunction)reader_close, METH_NOARGS, "unmap the rings, drop undelivered events"},
    {NULL},
};

static PyTypeObject ReaderType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "ebpfprof._ring.Reader",
    .tp_basicsize = sizeof(ReaderObject),
    .tp_dealloc = (destructor)reader_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Reads the run's rings and hands each event to its handler.",
    .tp_methods = reader_methods,
    .tp_members = reader_members,
    .tp_getset = reader_getset,
    .tp_init = (initproc)reader_init,
    .tp_new = PyType_GenericNew,
};

/* ---------------------------------------------------------------------------------------- */
/* Module functions                                                                          */

static PyObject *mod_set_hooks(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"print_event", "resolve_callchain", NULL};
    PyObject *p = Py_None, *c = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OO", kwlist, &p, &c))
        return NULL;
    Py_XSETREF(hook_print, p == Py_None ? NULL : Py_NewRef(p));
    Py_XSETREF(hook_callchain, c == Py_None ? NULL : Py_NewRef(c));
    Py_RETURN_NONE;
}

static PyObject *mod_set_realtime_offset(PyObject *m, PyObject *arg)
{
    long long v = PyLong_AsLongLong(arg);
    if (v == -1 && PyErr_Occurred())
        return NULL;
    realtime_offset = v;
    Py_RETURN_NONE;
}

/* arg as a PerfEvent, or NULL with a TypeError. */
static PerfEventObject *as_event(PyObject *arg)
{
    if (!PyObject_TypeCheck(arg, &PerfEventType)) {
        PyErr_SetString(PyExc_TypeError, "expected a PerfEvent");
        return NULL;
    }
    return (PerfEventObject *)arg;
}

static PyObject *mod_event_raw(PyObject *m, PyObject *arg)
{
    PerfEventObject *ev = as_event(arg);
    return ev ? PyBytes_FromStringAndSize((const char *)ev_raw(ev), ev->raw_size) : NULL;
}

static PyObject *mod_event_frames(PyObject *m, PyObject *arg)
{
    PerfEventObject *ev = as_event(arg);
    return ev ? frames_tuple(ev) : NULL;
}

static PyObject *mod_event_class(PyObject *m, PyObject *arg)
{
    PerfEventObject *ev = as_event(arg);
    return ev ? Py_NewRef((PyObject *)ev->cls) : NULL;
}

/*
 * make_event(cls, time, pid, tid, cpu, raw, frames=()) — build an event from bytes.
 * For unit tests and for replaying recorded samples; scripts never see this.
 */
static PyObject *mod_make_event(PyObject *m, PyObject *args)
{
    PyObject *cls, *frames_obj = NULL;
    unsigned long long time;
    unsigned int pid, tid, cpu;
    Py_buffer raw;
    if (!PyArg_ParseTuple(args, "O!KIIIy*|O", &EventClassType, &cls, &time, &pid, &tid, &cpu,
                          &raw, &frames_obj))
        return NULL;
    if (raw.len > UINT32_MAX) {
        PyBuffer_Release(&raw);
        PyErr_SetString(PyExc_ValueError, "raw record longer than 4 GiB");
        return NULL;
    }
    if (!eventclass_ready((EventClassObject *)cls)) {
        PyBuffer_Release(&raw);
        PyErr_SetString(PyExc_TypeError, "EventClass not initialised");
        return NULL;
    }
    PyObject *frames = frames_obj ? PySequence_Fast(frames_obj, "frames must be a sequence") : PyTuple_New(0);
    if (!frames) {
        PyBuffer_Release(&raw);
        return NULL;
    }
    Py_ssize_t nf = PySequence_Fast_GET_SIZE(frames);
    u64 *fv = PyMem_Calloc(nf ? nf : 1, sizeof(u64));
    for (Py_ssize_t i = 0; fv && i < nf; i++) {
        fv[i] = PyLong_AsUnsignedLongLongMask(PySequence_Fast_GET_ITEM(frames, i));
    }
    PyObject *res = NULL;
    if (fv && !PyErr_Occurred()) {
        struct ep_sample s = {.time = time, .pid = pid, .tid = tid, .cpu = cpu,
                              .nr_frames = (u16)nf, .raw_size = (u32)raw.len};
        res = (PyObject *)perf_event_new((EventClassObject *)cls, &s, raw.buf, fv);
    } else if (!fv) {
        PyErr_NoMemory();
    }
    PyMem_Free(fv);
    Py_DECREF(frames);
    PyBuffer_Release(&raw);
    return res;
}

/*
 * call_loop(handler, arg, n): call handler(arg) n times — the bare CPython baseline
 * that bench/ compares the reader's per-event cost against.
 */
static PyObject *mod_call_loop(PyObject *m, PyObject *args)
{
    PyObject *handler, *arg;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "OOn", &handler, &arg, &n))
        return NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *r = PyObject_Vectorcall(handler, &arg, 1, NULL);
        if (!r)
            return NULL;
        Py_DECREF(r);
    }
    Py_RETURN_NONE;
}

static PyObject *mod_handler_errors(PyObject *m, PyObject *unused)
{
    return PyLong_FromLongLong(handler_errors.total);
}

static PyMethodDef module_methods[] = {
    {"set_hooks", (PyCFunction)(void (*)(void))mod_set_hooks, METH_VARARGS | METH_KEYWORDS,
     "set_hooks(print_event=None, resolve_callchain=None)"},
    {"set_realtime_offset", mod_set_realtime_offset, METH_O, "CLOCK_REALTIME - CLOCK_MONOTONIC in ns"},
    {"event_raw", mod_event_raw, METH_O, "the raw tracepoint record of an event (bytes)"},
    {"event_frames", mod_event_frames, METH_O, "the unresolved callchain of an event (tuple of int)"},
    {"event_class", mod_event_class, METH_O, "the EventClass of an event"},
    {"make_event", mod_make_event, METH_VARARGS, "make_event(cls, time, pid, tid, cpu, raw, frames=())"},
    {"call_loop", mod_call_loop, METH_VARARGS, "call_loop(handler, arg, n): the benchmark baseline"},
    {"handler_errors", mod_handler_errors, METH_NOARGS, "exceptions raised by handlers so far"},
    {NULL},
};

static struct PyModuleDef ring_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "ebpfprof._ring",
    .m_doc = "The hot path: rings → PerfEvent → handlers.",
    .m_size = -1,
    .m_methods = module_methods,
};

/*
 * SAMPLE_LAYOUT: ((field, offset, size), ...) of struct ep_sample as this build compiled it,
 * for the test that holds it to the layout bpf/ep_sample.h documents.
 */
#define SAMPLE_FIELD(f) {#f, offsetof(struct ep_sample, f), sizeof(((struct ep_sample *)0)->f)}

static int add_sample_layout(PyObject *m)
{
    static const struct { const char *name; size_t offset, size; } fields[] = {
        SAMPLE_FIELD(time), SAMPLE_FIELD(pid), SAMPLE_FIELD(tid), SAMPLE_FIELD(cpu),
        SAMPLE_FIELD(selector), SAMPLE_FIELD(nr_frames), SAMPLE_FIELD(lost), SAMPLE_FIELD(raw_size),
    };
    size_t n = sizeof(fields) / sizeof(fields[0]);
    PyObject *layout = PyTuple_New((Py_ssize_t)n);
    if (!layout)
        return -1;
    for (size_t i = 0; i < n; i++) {
        PyObject *item = Py_BuildValue("(snn)", fields[i].name, (Py_ssize_t)fields[i].offset,
                                       (Py_ssize_t)fields[i].size);
        if (!item) {
            Py_DECREF(layout);
            return -1;
        }
        PyTuple_SET_ITEM(layout, (Py_ssize_t)i, item);
    }
    int rc = PyModule_AddObjectRef(m, "SAMPLE_LAYOUT", layout);
    Py_DECREF(layout);
    return rc;
}

PyMODINIT_FUNC PyInit__ring(void)
{
    if (PyType_Ready(&EventClassType) < 0 || PyType_Ready(&PerfEventType) < 0 ||
        PyType_Ready(&ReaderType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&ring_module);
    if (!m)
        return NULL;
    if (PyModule_AddObjectRef(m, "EventClass", (PyObject *)&EventClassType) < 0 ||
        PyModule_AddObjectRef(m, "PerfEvent", (PyObject *)&PerfEventType) < 0 ||
        PyModule_AddObjectRef(m, "Reader", (PyObject *)&ReaderType) < 0)
        goto fail;
    struct { const char *name; int value; } consts[] = {
        {"FIELD_INT", F_INT}, {"FIELD_STR", F_STR}, {"FIELD_DYN_STR", F_DYN_STR},
        {"FIELD_REL_STR", F_REL_STR}, {"FIELD_ARRAY", F_ARRAY}, {"FIELD_DYN_ARRAY", F_DYN_ARRAY},
        {"FIELD_REL_ARRAY", F_REL_ARRAY}, {"SAMPLE_HEADER_SIZE", (int)sizeof(struct ep_sample)},
    };
    for (size_t i = 0; i < sizeof(consts) / sizeof(consts[0]); i++)
        if (PyModule_AddIntConstant(m, consts[i].name, consts[i].value) < 0)
            goto fail;
    if (add_sample_layout(m) < 0)
        goto fail;
    return m;
fail:
    Py_DECREF(m);
    return NULL;
}
