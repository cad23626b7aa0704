/*
 * ebpfprof._ring — the hot path: ring buffer → PerfEvent → the user's handler.
 *
 * Everything per event happens in this extension, in C (ring.h lists the files on the way);
 * everything that is not per event (which handler, what fields, how to print or symbolize) is
 * decided in Python and handed over as EventClass objects and hook functions. This file: the
 * module, its functions (hooks, make_event, the bench's call_loop) and constants.
 */
#include "ring.h"
#include "ep_sample.h"

PyObject *hook_print = NULL;
PyObject *hook_callchain = NULL;
int callchain_always = 0;
long long realtime_offset = 0;

static PyObject *mod_set_hooks(PyObject *m, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"print_event", "resolve_callchain", "callchain_always", NULL};
    PyObject *p = Py_None, *c = Py_None;
    int always = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "|OOp", kwlist, &p, &c, &always))
        return NULL;
    callchain_always = always;
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
/*
 * make_event(cls, time, pid, tid, cpu, raw, frames=()) — build an event from bytes, as a ring
 * reader's Record would. For unit tests and for replaying recorded samples; scripts never
 * see this.
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
    /* One buffer laid out like a ring record's body: raw part padded to 8 (as Record asks),
     * then the frames. The event copies from it. */
    Py_ssize_t nf = PySequence_Fast_GET_SIZE(frames);
    size_t raw_padded = ((size_t)raw.len + 7) & ~(size_t)7;
    u8 *body = PyMem_Calloc(1, raw_padded + (size_t)nf * 8 + 8);
    PyObject *res = NULL;
    if (body) {
        memcpy(body, raw.buf, (size_t)raw.len);
        u64 *fv = (u64 *)(body + raw_padded);
        for (Py_ssize_t i = 0; i < nf; i++)
            fv[i] = PyLong_AsUnsignedLongLongMask(PySequence_Fast_GET_ITEM(frames, i));
        if (!PyErr_Occurred()) {
            Record rec = {.time = time, .period = 1, .pid = pid, .tid = tid, .cpu = cpu,
                          .raw = body, .raw_size = (u32)raw.len,
                          .frames = fv, .nr_frames = (u32)nf};
            res = (PyObject *)perf_event_new((EventClassObject *)cls, &rec);
        }
    } else {
        PyErr_NoMemory();
    }
    PyMem_Free(body);
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
    return PyLong_FromLongLong(handler_error_count());
}

static PyMethodDef module_methods[] = {
    {"set_hooks", (PyCFunction)(void (*)(void))mod_set_hooks, METH_VARARGS | METH_KEYWORDS,
     "set_hooks(print_event=None, resolve_callchain=None, callchain_always=False)"},
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
        {"FIELD_REL_ARRAY", F_REL_ARRAY}, {"FIELD_SAMPLE", F_SAMPLE},
        {"SAMPLE_HEADER_SIZE", (int)sizeof(struct ep_sample)},
        {"PERF_RING_SAMPLES", PERF_RING_SAMPLES}, {"PERF_RING_BPF_OUTPUT", PERF_RING_BPF_OUTPUT},
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
