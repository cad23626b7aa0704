/*
 * Perf samples: where each member of a PERF_RECORD_SAMPLE body sits (sample_walk), and a
 * member's value as a script reads it (decode_sample_member). sample.h has the layout.
 */
#include "ring.h"
#include "sample.h"

static inline u64 load_u64(const u8 *p)
{
    u64 v;
    memcpy(&v, p, 8);
    return v;
}

static inline u32 load_u32(const u8 *p)
{
    u32 v;
    memcpy(&v, p, 4);
    return v;
}

/* The members in the order the kernel writes them (bit numbers of PERF_SAMPLE_*). */
static const int member_order[] = {
    16 /* IDENTIFIER */, 0 /* IP */, 1 /* TID */, 2 /* TIME */, 3 /* ADDR */, 6 /* ID */,
    9 /* STREAM_ID */, 7 /* CPU */, 8 /* PERIOD */, 4 /* READ */, 5 /* CALLCHAIN */, 10 /* RAW */,
    11 /* BRANCH_STACK */, 12 /* REGS_USER */, 13 /* STACK_USER */, 14 /* WEIGHT */,
    24 /* WEIGHT_STRUCT */, 15 /* DATA_SRC */, 17 /* TRANSACTION */, 18 /* REGS_INTR */,
    19 /* PHYS_ADDR */, 21 /* CGROUP */, 22 /* DATA_PAGE_SIZE */, 23 /* CODE_PAGE_SIZE */,
    20 /* AUX */,
};

/* Bytes member `bit` takes at p (avail bytes left); 0 with *bad set if it cannot fit. */
static u32 member_size(const u8 *p, u32 avail, int bit, const SampleSpec *spec, int *bad)
{
    u64 n;
    switch (bit) {
    case 4:     /* READ */
        if (!(spec->read_format & PERF_FORMAT_GROUP))
            return read_value_size(spec->read_format);
        if (avail < 8)
            break;
        n = load_u64(p);
        {
            u64 head = 8 + ((spec->read_format & PERF_FORMAT_TOTAL_TIME_ENABLED) ? 8 : 0)
                         + ((spec->read_format & PERF_FORMAT_TOTAL_TIME_RUNNING) ? 8 : 0);
            u64 total = head + n * read_value_size(spec->read_format);
            if (n > avail || total > avail)
                break;
            return (u32)total;
        }
    case 5:     /* CALLCHAIN: nr, ips[nr] */
        if (avail < 8)
            break;
        n = load_u64(p);
        if (n > avail / 8 || 8 + n * 8 > avail)
            break;
        return (u32)(8 + n * 8);
    case 10:    /* RAW: u32 size, data[size] (size keeps the whole a multiple of 8) */
        if (avail < 4)
            break;
        n = load_u32(p);
        if (4 + n > avail)
            break;
        return (u32)(4 + n);
    case 11:    /* BRANCH_STACK: nr, [hw_idx], {from, to, flags}[nr] */
        if (avail < 8)
            break;
        n = load_u64(p);
        if (n > avail / 24 || 8 + (spec->branch_hw_index ? 8 : 0) + n * 24 > avail)
            break;
        return (u32)(8 + (spec->branch_hw_index ? 8 : 0) + n * 24);
    case 12:    /* REGS_USER: abi, regs[weight(mask)] if abi */
    case 18:    /* REGS_INTR */
        if (avail < 8)
            break;
        n = load_u64(p) ? (u64)__builtin_popcountll(bit == 12 ? spec->regs_user_mask : spec->regs_intr_mask) : 0;
        if (8 + n * 8 > avail)
            break;
        return (u32)(8 + n * 8);
    case 13:    /* STACK_USER: size, data[size], dyn_size if size */
        if (avail < 8)
            break;
        n = load_u64(p);
        if (n > avail || 8 + n + (n ? 8 : 0) > avail)
            break;
        return (u32)(8 + n + (n ? 8 : 0));
    case 20:    /* AUX: size, data[size] */
        if (avail < 8)
            break;
        n = load_u64(p);
        if (n > avail || 8 + n > avail)
            break;
        return (u32)(8 + n);
    case 1:     /* TID: u32 pid, tid */
    case 7:     /* CPU: u32 cpu, res */
    default:    /* every other member is one u64 */
        if (avail < 8)
            break;
        return 8;
    }
    *bad = 1;
    return 0;
}

int sample_spec_check(const SampleSpec *spec)
{
    u64 unknown = spec->sample_type & ~((1ULL << SAMPLE_BITS) - 1);
    if (unknown) {
        PyErr_Format(PyExc_ValueError, "perf sample_type 0x%llx has members the reader cannot lay out (0x%llx)",
                     (unsigned long long)spec->sample_type, (unsigned long long)unknown);
        return -1;
    }
    if ((spec->sample_type & PERF_SAMPLE_WEIGHT) && (spec->sample_type & PERF_SAMPLE_WEIGHT_STRUCT)) {
        PyErr_SetString(PyExc_ValueError, "perf sample_type has both PERF_SAMPLE_WEIGHT and PERF_SAMPLE_WEIGHT_STRUCT");
        return -1;
    }
    if (spec->read_format & ~(u64)(PERF_FORMAT_TOTAL_TIME_ENABLED | PERF_FORMAT_TOTAL_TIME_RUNNING
                                   | PERF_FORMAT_ID | PERF_FORMAT_GROUP | PERF_FORMAT_LOST)) {
        PyErr_Format(PyExc_ValueError, "perf read_format 0x%llx has bits the reader cannot lay out",
                     (unsigned long long)spec->read_format);
        return -1;
    }
    return 0;
}

int sample_walk(const u8 *body, u32 size, const SampleSpec *spec, int upto, SampleLayout *out)
{
    for (int i = 0; i < SAMPLE_BITS; i++)
        out->off[i] = SAMPLE_ABSENT;
    u32 pos = 0;
    for (size_t i = 0; i < sizeof(member_order) / sizeof(member_order[0]); i++) {
        int bit = member_order[i];
        if (!(spec->sample_type & (1ULL << bit)))
            continue;
        int bad = 0;
        u32 len = member_size(body + pos, size - pos, bit, spec, &bad);
        if (bad)
            return -1;
        out->off[bit] = pos;
        out->len[bit] = len;
        pos += len;
        if (bit == upto)
            break;
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Values                                                                                  */

static int dict_set_u64(PyObject *d, const char *key, u64 v)
{
    PyObject *o = PyLong_FromUnsignedLongLong(v);
    if (!o)
        return -1;
    int rc = PyDict_SetItemString(d, key, o);
    Py_DECREF(o);
    return rc;
}

/* read: {'value'[,'time_enabled','time_running','id','lost']}, or for a group
 * {'nr'[,'time_enabled','time_running'],'cntr':[{'value'[,'id','lost']}...]}. */
static PyObject *decode_read(const u8 *p, u64 read_format)
{
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    size_t i = 0;
#define NEXT() load_u64(p + 8 * i++)
    if (!(read_format & PERF_FORMAT_GROUP)) {
        if (dict_set_u64(d, "value", NEXT()) < 0)
            goto fail;
        if ((read_format & PERF_FORMAT_TOTAL_TIME_ENABLED) && dict_set_u64(d, "time_enabled", NEXT()) < 0)
            goto fail;
        if ((read_format & PERF_FORMAT_TOTAL_TIME_RUNNING) && dict_set_u64(d, "time_running", NEXT()) < 0)
            goto fail;
        if ((read_format & PERF_FORMAT_ID) && dict_set_u64(d, "id", NEXT()) < 0)
            goto fail;
        if ((read_format & PERF_FORMAT_LOST) && dict_set_u64(d, "lost", NEXT()) < 0)
            goto fail;
        return d;
    }
    u64 nr = NEXT();
    if (dict_set_u64(d, "nr", nr) < 0)
        goto fail;
    if ((read_format & PERF_FORMAT_TOTAL_TIME_ENABLED) && dict_set_u64(d, "time_enabled", NEXT()) < 0)
        goto fail;
    if ((read_format & PERF_FORMAT_TOTAL_TIME_RUNNING) && dict_set_u64(d, "time_running", NEXT()) < 0)
        goto fail;
    PyObject *cntr = PyList_New(0);
    if (!cntr || PyDict_SetItemString(d, "cntr", cntr) < 0) {
        Py_XDECREF(cntr);
        goto fail;
    }
    Py_DECREF(cntr);       /* d holds it */
    for (u64 k = 0; k < nr; k++) {
        PyObject *c = PyDict_New();
        int rc = !c || dict_set_u64(c, "value", NEXT()) < 0
                 || ((read_format & PERF_FORMAT_ID) && dict_set_u64(c, "id", NEXT()) < 0)
                 || ((read_format & PERF_FORMAT_LOST) && dict_set_u64(c, "lost", NEXT()) < 0)
                 || PyList_Append(cntr, c) < 0;
        Py_XDECREF(c);
        if (rc)
            goto fail;
    }
#undef NEXT
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

/* regs: {'abi': N, name: value, ...} in mask bit order; just {'abi': 0} when none were taken. */
static PyObject *decode_regs(const u8 *p, u64 mask, PyObject *names)
{
    PyObject *d = PyDict_New();
    if (!d)
        return NULL;
    u64 abi = load_u64(p);
    if (dict_set_u64(d, "abi", abi) < 0)
        goto fail;
    if (!abi)
        return d;
    size_t i = 1;
    for (int bit = 0; bit < 64; bit++) {
        if (!(mask & (1ULL << bit)))
            continue;
        PyObject *v = PyLong_FromUnsignedLongLong(load_u64(p + 8 * i++));
        if (!v)
            goto fail;
        int rc;
        if (names && PyTuple_Check(names) && bit < PyTuple_GET_SIZE(names)) {
            rc = PyDict_SetItem(d, PyTuple_GET_ITEM(names, bit), v);
        } else {
            char key[16];
            snprintf(key, sizeof(key), "r%d", bit);
            rc = PyDict_SetItemString(d, key, v);
        }
        Py_DECREF(v);
        if (rc < 0)
            goto fail;
    }
    return d;
fail:
    Py_DECREF(d);
    return NULL;
}

/* A member the sample does not hold (or a sample too short to hold it) reads as its empty
 * value, as a truncated tracepoint field does. */
static PyObject *empty_value(int bit)
{
    switch (bit) {
    case 4: case 12: case 18:
        return PyDict_New();
    case 5:
        return PyList_New(0);
    case 10: case 11: case 13: case 20:
        return PyBytes_FromStringAndSize("", 0);
    }
    return PyLong_FromLong(0);
}

PyObject *decode_sample_member(PerfEventObject *ev, const FieldDesc *d)
{
    int bit = (int)d->offset;
    const SampleSpec *spec = &ev->cls->sample;
    SampleLayout lay;
    if (bit < 0 || bit >= SAMPLE_BITS || sample_walk(ev_raw(ev), ev->raw_size, spec, bit, &lay) < 0
        || lay.off[bit] == SAMPLE_ABSENT)
        return empty_value(bit);
    const u8 *p = ev_raw(ev) + lay.off[bit];
    u32 len = lay.len[bit];
    switch (bit) {
    case 1:     /* TID: pid at 0, tid at 4 (d->size says which half) */
    case 7:     /* CPU: cpu at 0, res at 4 */
        return PyLong_FromUnsignedLong(load_u32(p + (d->size == 4 ? 4 : 0)));
    case 4:
        return decode_read(p, spec->read_format);
    case 5:
        return get_callchain(ev);
    case 10:    /* RAW: the data, without its size word */
        return PyBytes_FromStringAndSize((const char *)p + 4, len - 4);
    case 11:    /* BRANCH_STACK: the {from, to, flags} entries as the kernel wrote them */
        if (spec->branch_hw_index) {    /* hw_idx comes between nr and the entries */
            u32 skip = len < 16 ? len : 16;
            return PyBytes_FromStringAndSize((const char *)p + skip, len - skip);
        }
        return PyBytes_FromStringAndSize((const char *)p + 8, len - 8);
    case 13:    /* STACK_USER: the stack bytes (dyn_size of them were valid) */
    case 20:    /* AUX */
        if (bit == 13 && len > 8) {
            u64 dyn = load_u64(p + len - 8), n = len - 16;
            return PyBytes_FromStringAndSize((const char *)p + 8, (Py_ssize_t)(dyn < n ? dyn : n));
        }
        return PyBytes_FromStringAndSize((const char *)p + 8, len > 8 ? len - 8 : 0);
    case 12:
        return decode_regs(p, spec->regs_user_mask, ev->cls->reg_names);
    case 18:
        return decode_regs(p, spec->regs_intr_mask, ev->cls->reg_names);
    }
    return PyLong_FromUnsignedLongLong(load_u64(p));
}
