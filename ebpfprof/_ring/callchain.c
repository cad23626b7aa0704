/*
 * Callchains: an event's frames as the kernel gave them (context markers included), resolved
 * to symbols by the Python hook on first read of _callchain, then kept with the event.
 */
#include "ring.h"

/* The event's raw callchain (context markers included) as a tuple of int. */
PyObject *frames_tuple(PerfEventObject *ev)
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

PyObject *get_callchain(PerfEventObject *ev)
{
    if (ev->callchain) {
        Py_INCREF(ev->callchain);
        return ev->callchain;
    }
    if ((ev->nr_frames == 0 && !callchain_always) || !hook_callchain)
        return PyList_New(0);
    PyObject *frames = frames_tuple(ev);
    if (!frames)
        return NULL;
    PyObject *pid = PyLong_FromUnsignedLong(ev->pid);
    PyObject *res = pid ? PyObject_CallFunctionObjArgs(hook_callchain, (PyObject *)ev->cls, pid, frames, (PyObject *)ev, NULL) : NULL;
    Py_XDECREF(pid);
    Py_DECREF(frames);
    if (!res)
        return NULL;
    ev->callchain = res;
    Py_INCREF(res);
    return res;
}
