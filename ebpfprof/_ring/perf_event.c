/*
 * PerfEvent: one event as a script sees it. It owns a copy of its record (so scripts may keep
 * it), reads like a read-only mapping of its fields, and decodes a field only when asked.
 */
#include "ring.h"

/* A new event of class cls with room for items (event_items()); the caller fills it. */
PerfEventObject *perf_event_alloc(EventClassObject *cls, Py_ssize_t items)
{
    PerfEventObject *ev = PyObject_NewVar(PerfEventObject, &PerfEventType, items);
    if (!ev)
        return NULL;
    Py_INCREF(cls);
    ev->cls = cls;
    ev->callchain = NULL;
    return ev;
}

/* A new event owning a copy of rec's raw part and frames. */
PerfEventObject *perf_event_new(EventClassObject *cls, const Record *rec)
{
    PerfEventObject *ev = perf_event_alloc(cls, event_items(rec));
    if (ev)
        perf_event_fill(ev, rec);
    return ev;
}

static void perf_event_dealloc(PerfEventObject *ev)
{
    Py_DECREF(ev->cls);
    Py_XDECREF(ev->callchain);
    PyObject_Free(ev);
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

PyTypeObject PerfEventType = {
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
