/*
 * Delivery, the parts out of line (deliver.h has the per-record path): losses to the script's
 * __lost__, handler exceptions (printed, rate-limited; the run goes on), and --order's flush
 * of the queues up to the caller's horizon.
 */
#include "ring.h"
#include "deliver.h"

#include <time.h>

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
int handler_failed(void)
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

long long handler_error_count(void)
{
    return handler_errors.total;
}

/* ---------------------------------------------------------------------------------------- */
/* Calls into the script                                                                    */

int deliver_lost(ReaderObject *self, u64 lost, u64 start, u64 end)
{
    self->lost += (long long)lost;
    if (self->lost_handler == Py_None)
        return 0;
    PyObject *r = PyObject_CallFunction(self->lost_handler, "KK", (unsigned long long)start,
                                        (unsigned long long)end);
    if (!r)
        return handler_failed();
    Py_DECREF(r);
    return 0;
}

/* Give one event to its handler, if its class has one. */
static int deliver_event(ReaderObject *self, PerfEventObject *ev)
{
    EventClassObject *cls = ev->cls;
    if (cls->handler == Py_None) {
        cls->dropped++;
        return 0;
    }
    if (cls->budget == 0) {
        cls->over_budget++;
        return 0;
    }
    return call_handler(self, cls, ev);
}

/* Deliver pending entries, oldest first, up to time horizon (all of them with all). */
int deliver_pending(ReaderObject *self, u64 horizon, int all)
{
    const Pending *next;
    while (!self->stop && self->budget != 0 && (next = order_oldest(&self->order))) {
        if (!all && next->time > horizon)
            break;
        Pending e = order_pop(&self->order);
        int rc;
        if (!e.ev) {
            rc = deliver_lost(self, e.lost, e.lost_start, e.time);
        } else {
            rc = deliver_event(self, (PerfEventObject *)e.ev);
            Py_DECREF(e.ev);
        }
        if (rc < 0)
            return -1;
    }
    return 0;
}

/* discard(): every entry waiting in the queues goes, undelivered, into lost. */
void discard_pending(ReaderObject *self)
{
    while (order_oldest(&self->order)) {
        Pending e = order_pop(&self->order);
        if (e.ev) {
            self->lost++;
            self->discarded++;
            Py_DECREF(e.ev);
        } else {
            self->lost += (long long)e.lost;      /* a loss marker not yet reported */
        }
    }
}
