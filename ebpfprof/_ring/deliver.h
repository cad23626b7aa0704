/*
 * deliver_record(): the one way into delivery, for every ring reader and every mode. It checks
 * the record's class, then hands the record to the class's handler at once, in a recycled
 * event (unordered), or queues it as a new event for --order, or (discard()) counts it as
 * lost. Losses a record reports go to the script's __lost__ before it.
 *
 * Inline in each ring reader, on purpose: a Record is read only here, so it stays in
 * registers. Built on the stack and read through a pointer in another file, its fields were
 * reloaded with wider loads than they were stored with (GCC's SLP vectorizer), which costs a
 * store-forwarding stall per record: 6 ns of a 50 ns event, measured. deliver.c holds what is
 * not per event.
 */
#ifndef EBPFPROF_DELIVER_H
#define EBPFPROF_DELIVER_H

#include "ring.h"

/* Whether a drain in this mode takes another record: discard() takes them all; the others
 * stop when stop() was called or the budget (-N) is spent. */
static inline int reader_wants_records(const ReaderObject *self, enum deliver_mode mode)
{
    return mode == DELIVER_DISCARD || (!self->stop && self->budget != 0);
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
    if (cls->budget > 0)
        cls->budget--;
    if (!r)
        return handler_failed();
    Py_DECREF(r);
    return 0;
}

/* Unordered: the record straight to its handler, in the spare event if it has room. */
static inline int record_now(ReaderObject *self, EventClassObject *cls, const Record *rec)
{
    if (rec->lost && deliver_lost(self, rec->lost, 0, 0) < 0)
        return -1;
    if (cls->handler == Py_None) {
        cls->dropped++;
        return 0;
    }
    if (cls->budget == 0) {
        cls->over_budget++;
        return 0;
    }
    PerfEventObject *ev = self->spare;
    if (ev && Py_SIZE(ev) >= event_items(rec)) {
        self->spare = NULL;      /* nobody else holds it (checked when it was kept) */
        if (ev->cls != cls) {
            Py_INCREF(cls);
            Py_SETREF(ev->cls, cls);
        }
    } else if (!(ev = perf_event_alloc(cls, event_items(rec)))) {
        return -1;
    }
    perf_event_fill(ev, rec);
    int rc = call_handler(self, cls, ev);
    if (Py_REFCNT(ev) == 1 && !self->spare) {
        Py_CLEAR(ev->callchain);
        self->spare = ev;        /* the handler did not keep it */
    } else {
        Py_DECREF(ev);
    }
    return rc;
}

/* Ordered: the record joins its ring's queue (after its loss marker, if it carries one). */
static inline int record_to_queue(ReaderObject *self, int ring, EventClassObject *cls, const Record *rec)
{
    u32 cpu_slot = rec->cpu < MAX_TRACKED_CPUS ? rec->cpu : MAX_TRACKED_CPUS - 1;
    u64 prev_time = self->last_time[cpu_slot];
    self->last_time[cpu_slot] = rec->time;
    if (rec->lost) {
        if (order_insert(&self->order, ring, rec->time, NULL, rec->lost, prev_time) < 0)
            return -1;
    }
    if (cls->handler == Py_None) {
        cls->dropped++;
        return 0;
    }
    PerfEventObject *ev = perf_event_alloc(cls, event_items(rec));
    if (!ev)
        return -1;
    perf_event_fill(ev, rec);
    if (order_insert(&self->order, ring, rec->time, (PyObject *)ev, 0, 0) < 0) {
        Py_DECREF(ev);
        return -1;
    }
    return 0;
}

/*
 * discard(): the record, and the losses it reports, go to lost instead of to a handler. A
 * class without a handler drops it, as a drain would: nothing was lost there.
 */
static inline int record_discard(ReaderObject *self, EventClassObject *cls, const Record *rec)
{
    self->lost += (long long)rec->lost;
    if (cls->handler == Py_None) {
        cls->dropped++;
        return 0;
    }
    self->lost++;
    self->discarded++;
    return 0;
}

/*
 * A loss a ring reports as a record of its own (perf's PERF_RECORD_LOST), at `time` on `cpu`:
 * to __lost__ now, or into the ring's --order queue as a marker (bounded by the time of the
 * CPU's previous record), or counted by discard().
 */
static inline int deliver_loss(ReaderObject *self, int ring, u64 lost, u64 time, u32 cpu,
                               enum deliver_mode mode)
{
    if (mode == DELIVER_DISCARD) {
        self->lost += (long long)lost;
        return 0;
    }
    if (mode == DELIVER_ORDERED) {
        u32 slot = cpu < MAX_TRACKED_CPUS ? cpu : MAX_TRACKED_CPUS - 1;
        u64 start = self->last_time[slot];
        if (time > self->last_time[slot])
            self->last_time[slot] = time;
        return order_insert(&self->order, ring, time, NULL, lost, start);
    }
    return deliver_lost(self, lost, 0, 0);
}

/*
 * The class index is checked here and nowhere else: a record whose index is not in the class
 * table is skipped, uncounted, rather than misdecoded. -1: a Python error stops the drain.
 */
static inline int deliver_record(ReaderObject *self, int ring, const Record *rec, enum deliver_mode mode)
{
    if (rec->cls >= (u32)PyTuple_GET_SIZE(self->classes))
        return 0;
    EventClassObject *cls = (EventClassObject *)PyTuple_GET_ITEM(self->classes, rec->cls);
    self->records++;
    if (mode == DELIVER_ORDERED)
        return record_to_queue(self, ring, cls, rec);
    if (mode == DELIVER_DISCARD)
        return record_discard(self, cls, rec);
    return record_now(self, cls, rec);
}

#endif /* EBPFPROF_DELIVER_H */
