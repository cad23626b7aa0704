/*
 * Reader: the run's rings and its counters. drain() has each ring's reader hand its records
 * to delivery (deliver.c), then, with --order, delivers what the queues hold up to a horizon.
 */
#include "ring.h"
#include "sample.h"

#include <structmember.h>

/* ---------------------------------------------------------------------------------------- */
/* Rings by kind: the only place that knows which reader reads which ring                    */

static int ring_drain(ReaderObject *self, int i, enum deliver_mode mode, long long *count)
{
    Ring *r = &self->rings[i];
    switch (r->kind) {
    case RING_BPF:
        return bpf_ring_drain(self, i, &r->u.bpf, mode, count);
    case RING_PERF:
        return perf_ring_drain(self, i, &r->u.perf, mode, count);
    }
    PyErr_SetString(PyExc_SystemError, "ebpfprof: unknown ring kind");
    return -1;
}

static void ring_release(Ring *r)
{
    switch (r->kind) {
    case RING_BPF:
        bpf_ring_close(&r->u.bpf);
        break;
    case RING_PERF:
        perf_ring_close(&r->u.perf);
        break;
    }
}

/* Adopt a ring just opened: it gets the next index, and an --order queue of the same index. */
static int reader_add_ring(ReaderObject *self, const Ring *ring)
{
    Ring *rings = PyMem_Realloc(self->rings, sizeof(Ring) * (self->nr_rings + 1));
    if (!rings) {
        PyErr_NoMemory();
        return -1;
    }
    self->rings = rings;
    if (order_add_queue(&self->order) < 0)
        return -1;
    self->rings[self->nr_rings++] = *ring;
    return 0;
}

static void reader_release_rings(ReaderObject *self)
{
    for (int i = 0; i < self->nr_rings; i++)
        ring_release(&self->rings[i]);
    self->nr_rings = 0;
    order_clear(&self->order);
}

/* ---------------------------------------------------------------------------------------- */
/* The Reader type                                                                          */

static void reader_dealloc(ReaderObject *self)
{
    Py_CLEAR(self->spare);
    reader_release_rings(self);
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

/* drain(), discard(), close() and add_bpf_ring() are refused from inside a handler: records
 * being read would be freed, moved or handed back to the kernel under the drain's feet. */
static int refuse_while_draining(ReaderObject *self, const char *what)
{
    if (!self->draining)
        return 0;
    PyErr_Format(PyExc_RuntimeError, "Reader.%s() cannot be called while it drains (from a handler)", what);
    return -1;
}

/* add_bpf_ring(map_fd, data_size): read a BPF_MAP_TYPE_RINGBUF map of this data size. */
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
    Ring ring = {.kind = RING_BPF};
    if (bpf_ring_open(&ring.u.bpf, fd, (size_t)data_size) < 0)
        return NULL;
    if (reader_add_ring(self, &ring) < 0) {
        ring_release(&ring);
        return NULL;
    }
    Py_RETURN_NONE;
}

/*
 * add_perf_ring(fd, data_pages, kind, cls=0, cpu=0, sample=(0, 0, 0, 0, False)) -> ring index
 * Read the mmap ring of perf event fd (1 + data_pages pages). kind: PERF_RING_SAMPLES (every
 * sample of class cls, laid out by sample = (sample_type, read_format, sample_regs_user,
 * sample_regs_intr, branch_hw_index)) or PERF_RING_BPF_OUTPUT (ep_sample records in RAW).
 */
static PyObject *reader_add_perf_ring(ReaderObject *self, PyObject *args, PyObject *kwds)
{
    static char *kwlist[] = {"fd", "data_pages", "kind", "cls", "cpu", "sample", NULL};
    int fd, kind;
    Py_ssize_t pages;
    unsigned int cls = 0, cpu = 0;
    unsigned long long st = 0, rf = 0, ru = 0, ri = 0;
    int hw_index = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "ini|II(KKKKp)", kwlist, &fd, &pages, &kind, &cls, &cpu,
                                     &st, &rf, &ru, &ri, &hw_index))
        return NULL;
    if (refuse_while_draining(self, "add_perf_ring") < 0)
        return NULL;
    if (pages <= 0 || (pages & (pages - 1))) {
        PyErr_SetString(PyExc_ValueError, "data_pages must be a power of two");
        return NULL;
    }
    if (kind != PERF_RING_SAMPLES && kind != PERF_RING_BPF_OUTPUT) {
        PyErr_SetString(PyExc_ValueError, "kind must be PERF_RING_SAMPLES or PERF_RING_BPF_OUTPUT");
        return NULL;
    }
    if (kind == PERF_RING_SAMPLES && cls >= (unsigned int)PyTuple_GET_SIZE(self->classes)) {
        PyErr_SetString(PyExc_ValueError, "cls is not an index of the reader's classes");
        return NULL;
    }
    Ring ring = {.kind = RING_PERF};
    PerfRing *r = &ring.u.perf;
    r->kind = (enum perf_ring_kind)kind;
    r->cls = cls;
    r->cpu = cpu;
    r->spec = (SampleSpec){.sample_type = st, .read_format = rf, .regs_user_mask = ru,
                           .regs_intr_mask = ri, .branch_hw_index = hw_index};
    if (kind == PERF_RING_SAMPLES && sample_spec_check(&r->spec) < 0)
        return NULL;
    if (perf_ring_open(r, fd, (size_t)pages) < 0)
        return NULL;
    if (reader_add_ring(self, &ring) < 0) {
        ring_release(&ring);
        return NULL;
    }
    return PyLong_FromLong(self->nr_rings - 1);
}

/* perf_ring_stats(index) -> {'samples', 'lost_records', 'throttled', 'unthrottled', 'corrupt'} */
static PyObject *reader_perf_ring_stats(ReaderObject *self, PyObject *arg)
{
    long i = PyLong_AsLong(arg);
    if (i == -1 && PyErr_Occurred())
        return NULL;
    if (i < 0 || i >= self->nr_rings || self->rings[i].kind != RING_PERF) {
        PyErr_SetString(PyExc_IndexError, "no perf ring of that index");
        return NULL;
    }
    const PerfRing *r = &self->rings[i].u.perf;
    return Py_BuildValue("{sLsLsLsLsL}", "samples", r->samples, "lost_records", r->lost_records,
                         "throttled", r->throttled, "unthrottled", r->unthrottled, "corrupt", r->corrupt);
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
    enum deliver_mode mode = ordered ? DELIVER_ORDERED : DELIVER_NOW;
    long long count = 0;
    int rc = 0;
    self->draining = 1;
    for (int i = 0; i < self->nr_rings && rc == 0; i++)
        rc = ring_drain(self, i, mode, &count);
    if (rc == 0 && ordered)
        rc = deliver_pending(self, horizon, flush);
    self->draining = 0;
    return rc < 0 ? NULL : PyLong_FromLongLong(count);
}

/*
 * discard() -> records skipped
 * After stop(), at the end of a run: every committed record still in the rings and every
 * event waiting for --order is consumed without being delivered, and counted in lost, with
 * the losses the records report. Records of a class without a handler are dropped, as a drain
 * would. No Python code runs.
 */
static PyObject *reader_discard(ReaderObject *self, PyObject *unused)
{
    if (refuse_while_draining(self, "discard") < 0)
        return NULL;
    long long before = self->discarded, count = 0;
    int rc = 0;
    self->draining = 1;
    for (int i = 0; i < self->nr_rings && rc == 0; i++)
        rc = ring_drain(self, i, DELIVER_DISCARD, &count);
    discard_pending(self);
    self->draining = 0;
    return rc < 0 ? NULL : PyLong_FromLongLong(self->discarded - before);
}

/*
 * report_lost(n, start=0, end=0)
 * Losses a source found outside the stream (after its last record, or events the kernel
 * skipped): counted and handed to __lost__ the same way as the losses records carry.
 */
static PyObject *reader_report_lost(ReaderObject *self, PyObject *args)
{
    unsigned long long n, start = 0, end = 0;
    if (!PyArg_ParseTuple(args, "K|KK", &n, &start, &end))
        return NULL;
    if (refuse_while_draining(self, "report_lost") < 0)
        return NULL;
    if (n == 0)
        Py_RETURN_NONE;
    if (deliver_lost(self, n, start, end) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *reader_close(ReaderObject *self, PyObject *unused)
{
    if (refuse_while_draining(self, "close") < 0)
        return NULL;
    reader_release_rings(self);
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
    return PyLong_FromSize_t(order_len(&self->order));
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
    {"lost", T_LONGLONG, offsetof(ReaderObject, lost), 0, "records the kernel could not write, or discard() skipped"},
    {NULL},
};

static PyMethodDef reader_methods[] = {
    {"add_bpf_ring", (PyCFunction)reader_add_bpf_ring, METH_VARARGS,
     "add_bpf_ring(map_fd, data_size): read this BPF ring buffer map"},
    {"add_perf_ring", (PyCFunction)(void (*)(void))reader_add_perf_ring, METH_VARARGS | METH_KEYWORDS,
     "add_perf_ring(fd, data_pages, kind, cls=0, cpu=0, sample=(...)) -> index: read a perf event's mmap ring"},
    {"perf_ring_stats", (PyCFunction)reader_perf_ring_stats, METH_O,
     "perf_ring_stats(index) -> dict: samples, lost_records, throttled, unthrottled, corrupt of a perf ring"},
    {"drain", (PyCFunction)(void (*)(void))reader_drain, METH_VARARGS | METH_KEYWORDS,
     "drain(ordered=False, horizon=0, flush=False) -> records read"},
    {"stop", (PyCFunction)reader_stop, METH_NOARGS, "make drain() return at the next record"},
    {"discard", (PyCFunction)reader_discard, METH_NOARGS,
     "discard() -> records skipped: count what the rings and --order queues still hold as lost, undelivered"},
    {"report_lost", (PyCFunction)reader_report_lost, METH_VARARGS,
     "report_lost(n, start=0, end=0): losses found outside the stream, counted and sent to __lost__"},
    {"close", (PyCFunction)reader_close, METH_NOARGS, "unmap the rings, drop undelivered events"},
    {NULL},
};

PyTypeObject ReaderType = {
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
