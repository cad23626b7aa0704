/*
 * --order: each ring's records wait in a queue of their own, sorted by time (ring.h says why
 * one queue per ring is cheap), and leave oldest first across all the queues.
 */
#include "ring.h"

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

static void queue_clear(OrderQueue *q)
{
    for (size_t i = 0; i < q->len; i++)
        Py_XDECREF(queue_at(q, i)->ev);
    PyMem_Free(q->items);
    *q = (OrderQueue){0};
}

/* One more queue (for a new ring), at index nr_queues. */
int order_add_queue(Order *o)
{
    OrderQueue *queues = PyMem_Realloc(o->queues, sizeof(OrderQueue) * (o->nr_queues + 1));
    if (!queues) {
        PyErr_NoMemory();
        return -1;
    }
    o->queues = queues;
    o->queues[o->nr_queues++] = (OrderQueue){0};
    return 0;
}

int order_insert(Order *o, int queue, Pending e)
{
    e.seq = o->seq++;
    return queue_insert(&o->queues[queue], e);
}

/* The queue whose head is the oldest pending entry of all, or NULL if none waits. */
static OrderQueue *oldest_queue(const Order *o)
{
    OrderQueue *best = NULL;
    for (int i = 0; i < o->nr_queues; i++) {
        OrderQueue *q = &o->queues[i];
        if (q->len && (!best || pending_before(queue_at(q, 0), queue_at(best, 0))))
            best = q;
    }
    return best;
}

const Pending *order_oldest(const Order *o)
{
    OrderQueue *q = oldest_queue(o);
    return q ? queue_at(q, 0) : NULL;
}

Pending order_pop(Order *o)
{
    return queue_pop(oldest_queue(o));
}

size_t order_len(const Order *o)
{
    size_t n = 0;
    for (int i = 0; i < o->nr_queues; i++)
        n += o->queues[i].len;
    return n;
}

/* Drop every queue and what waits in it. */
void order_clear(Order *o)
{
    for (int i = 0; i < o->nr_queues; i++)
        queue_clear(&o->queues[i]);
    PyMem_Free(o->queues);
    *o = (Order){0};
}
