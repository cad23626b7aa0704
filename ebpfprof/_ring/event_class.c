/*
 * EventClass: one per selector — its name (_event), handler, and field table. Built in Python
 * (session.field_specs) before the run; the reader routes each record to one by index.
 */
#include "ring.h"
#include "sample.h"

#include <structmember.h>

static const char *const builtin_names[] = {
    "_pid", "_tid", "_time", "_cpu", "_period", "_realtime", "_event", "_callchain",
};

static void eventclass_dealloc(EventClassObject *self)
{
    Py_XDECREF(self->name);
    Py_XDECREF(self->handler);
    Py_XDECREF(self->index);
    Py_XDECREF(self->keys);
    Py_XDECREF(self->info);
    Py_XDECREF(self->reg_names);
    PyMem_Free(self->descs);
    PyMem_Free(self->by_identity);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/*
 * EventClass(name, handler, fields, info=None, sample=None, reg_names=None)
 *   fields: sequence of (name, kind, offset, size, signed) for the tracepoint's own fields
 *           (common_* included), kind one of FIELD_* module constants; for perf samples,
 *           FIELD_SAMPLE with offset = the member's PERF_SAMPLE_* bit (size: 4 for the second
 *           u32 of TID or CPU).
 *   sample: perf samples: (sample_type, read_format, sample_regs_user, sample_regs_intr,
 *           branch_hw_index), how the raw part is laid out; reg_names: register name by bit.
 */
static int eventclass_init(EventClassObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"name", "handler", "fields", "info", "sample", "reg_names", NULL};
    PyObject *name, *handler, *fields, *info = Py_None, *sample = Py_None, *reg_names = Py_None;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "UOO|OOO", kwlist, &name, &handler, &fields, &info,
                                     &sample, &reg_names))
        return -1;
    SampleSpec spec = {0};
    if (sample != Py_None) {
        unsigned long long st, rf, ru, ri;
        int hw = 0;
        if (!PyArg_ParseTuple(sample, "KKKKp", &st, &rf, &ru, &ri, &hw))
            return -1;
        spec = (SampleSpec){.sample_type = st, .read_format = rf, .regs_user_mask = ru,
                            .regs_intr_mask = ri, .branch_hw_index = hw};
        if (sample_spec_check(&spec) < 0)
            return -1;
    }
    if (reg_names != Py_None && !PyTuple_Check(reg_names)) {
        PyErr_SetString(PyExc_TypeError, "reg_names must be a tuple or None");
        return -1;
    }
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
        if (kind < F_INT || kind > F_SAMPLE) {
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
    self->sample = spec;
    Py_XSETREF(self->reg_names, reg_names == Py_None ? NULL : Py_NewRef(reg_names));
    self->budget = -1;
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
int eventclass_ready(EventClassObject *cls)
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
    {"budget", T_LONGLONG, offsetof(EventClassObject, budget), 0,
     "events still to deliver to this class (-N in a source's options); -1 = no limit"},
    {"over_budget", T_LONGLONG, offsetof(EventClassObject, over_budget), READONLY,
     "events that came after the class's budget was spent: not delivered"},
    {NULL},
};

PyTypeObject EventClassType = {
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

