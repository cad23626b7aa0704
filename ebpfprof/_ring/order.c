/*
 * --order: each ring's records wait in a queue of their own, sorted by time (ring.h says why
 * one queue per ring is cheap), and leave oldest first across all the queues, found with a
 * binary heap of the queues' heads.
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

/* ---------------------------------------------------------------------------------------- */
/* The heap of heads: heap[0] is the queue whose head is the oldest entry of all            */

static inline const Pending *head(const Order *o, int queue)
{
    return queue_at(&o->queues[queue], 0);
}

static inline void heap_set(Order *o, int i, int queue)
{
    o->heap[i] = queue;
    o->heap_pos[queue] = i;
}

static void sift_up(Order *o, int i)
{
    int queue = o->heap[i];
    while (i > 0) {
        int parent = (i - 1) / 2;
        if (!pending_before(head(o, queue), head(o, o->heap[parent])))
            break;
        heap_set(o, i, o->heap[parent]);
        i = parent;
    }
    heap_set(o, i, queue);
}

static void sift_down(Order *o, int i)
{
    int queue = o->heap[i];
    for (;;) {
        int child = 2 * i + 1;
        if (child >= o->heap_len)
            break;
        if (child + 1 < o->heap_len && pending_before(head(o, o->heap[child + 1]), head(o, o->heap[child])))
            child++;
        if (!pending_before(head(o, o->heap[child]), head(o, queue)))
            break;
        heap_set(o, i, o->heap[child]);
        i = child;
    }
    heap_set(o, i, queue);
}

/* ---------------------------------------------------------------------------------------- */

/* One more queue (for a new ring), at index nr_queues. */
int order_add_queue(Order *o)
{
    int n = o->nr_queues + 1;
    OrderQueue *queues = PyMem_Realloc(o->queues, sizeof(OrderQueue) * n);
    if (queues)
        o->queues = queues;
    int *heap = queues ? PyMem_Realloc(o->heap, sizeof(int) * n) : NULL;
    if (heap)
        o->heap = heap;
    int *heap_pos = heap ? PyMem_Realloc(o->heap_pos, sizeof(int) * n) : NULL;
    if (!heap_pos) {
        PyErr_NoMemory();
        return -1;
    }
    o->heap_pos = heap_pos;
    o->queues[o->nr_queues] = (OrderQueue){0};
    o->heap_pos[o->nr_queues] = -1;
    o->nr_queues = n;
    return 0;
}

int order_insert(Order *o, int queue, u64 time, PyObject *ev, u64 lost, u64 lost_start)
{
    OrderQueue *q = &o->queues[queue];
    Pending e = {.time = time, .seq = o->seq++, .ev = ev, .lost = lost, .lost_start = lost_start};
    if (queue_insert(q, e) < 0)
        return -1;
    if (head(o, queue)->seq != e.seq)
        return 0;                       /* behind the head: the heap is as it was */
    if (o->heap_pos[queue] < 0) {       /* the queue was empty */
        o->heap_pos[queue] = o->heap_len;
        o->heap[o->heap_len++] = queue;
    }
    sift_up(o, o->heap_pos[queue]);     /* its head got older */
    return 0;
}

const Pending *order_oldest(const Order *o)
{
    return o->heap_len ? head(o, o->heap[0]) : NULL;
}

Pending order_pop(Order *o)
{
    int queue = o->heap[0];
    OrderQueue *q = &o->queues[queue];
    Pending e = queue_pop(q);
    if (q->len == 0) {
        o->heap_pos[queue] = -1;
        if (--o->heap_len == 0)
            return e;
        heap_set(o, 0, o->heap[o->heap_len]);
    }
    sift_down(o, 0);                    /* the top's head got newer, or the top was replaced */
    return e;
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
    PyMem_Free(o->heap);
    PyMem_Free(o->heap_pos);
    *o = (Order){0};
}
