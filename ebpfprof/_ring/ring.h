/*
 * ebpfprof._ring: the types its files share (private to the extension).
 *
 * One event's path, each step one file:
 *   bpf_ring.c   a ring reader: each record of a BPF ring buffer becomes a Record
 *   perf_ring.c  the other: each sample of a perf_event mmap ring becomes one (sample.c
 *                knows a sample's layout)
 *   deliver.h    deliver_record(): the Record's class is checked, the Record becomes a
 *                PerfEvent given to its handler now, or queued for --order (order.c merges
 *                the queues; deliver.c delivers them, and losses, and handler errors)
 *   perf_event.c the PerfEvent (fields.c decodes its fields when read, callchain.c its frames)
 * Around it: reader.c (the Reader type: its rings, drain, discard), event_class.c (one per
 * selector: handler and field table), module.c (module functions, hooks, constants).
 */
#ifndef EBPFPROF_RING_H
#define EBPFPROF_RING_H

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stddef.h>
#include <stdint.h>
#include <string.h>

typedef uint8_t u8;
typedef uint16_t u16;
typedef uint32_t u32;
typedef uint64_t u64;

/* ---------------------------------------------------------------------------------------- */
/* Record: what every ring reader makes of one sample, whatever its ring's layout            */

/*
 * Ring readers decode their own layout into a Record and hand it to deliver_record(); nothing
 * after that knows which kind of ring it came from. The pointers are into the ring and valid
 * only during the call.
 */
typedef struct {
    u64 time;              /* CLOCK_MONOTONIC ns */
    u64 period;            /* 1 for BPF records; PERF_SAMPLE_PERIOD for perf samples */
    u64 lost;              /* records lost on this record's CPU just before it */
    u32 pid, tid, cpu;
    u32 cls;               /* index into the Reader's classes: deliver_record() checks it */
    const u8 *raw;         /* raw_size bytes, readable up to the next multiple of 8 */
    const u64 *frames;     /* nr_frames callchain entries, context markers included */
    u32 raw_size;
    u32 nr_frames;
} Record;

/* ---------------------------------------------------------------------------------------- */
/* EventClass (event_class.c): one per selector                                             */

enum field_kind {
    /* built-ins */
    F_PID, F_TID, F_TIME, F_CPU, F_PERIOD, F_REALTIME, F_EVENT, F_CALLCHAIN,
    /* from the tracepoint record */
    F_INT, F_STR, F_DYN_STR, F_REL_STR, F_ARRAY, F_DYN_ARRAY, F_REL_ARRAY,
    /* a member of a perf sample (sample.c); FieldDesc.offset holds its PERF_SAMPLE_* bit */
    F_SAMPLE,
};
#define NR_BUILTINS 8

typedef struct {
    int kind;
    u32 offset;
    u32 size;
    int is_signed;
} FieldDesc;

/*
 * Field names by identity. The names in a script's code are interned, as are ours, so
 * event.field finds its position by pointer; other strings fall back to the index dict.
 */
typedef struct {
    PyObject *name;        /* borrowed from keys; NULL = empty slot */
    Py_ssize_t pos;
} NameSlot;

static inline size_t name_slot(PyObject *name, size_t mask)
{
    uintptr_t p = (uintptr_t)name;
    return ((p >> 4) ^ (p >> 12)) & mask;
}

/*
 * What a perf sample's layout depends on (sample.h walks it): the perf_event_attr fields of
 * the events whose samples a class decodes. sample_type 0: the class is not of perf samples.
 */
typedef struct {
    u64 sample_type;
    u64 read_format;
    u64 regs_user_mask;    /* attr.sample_regs_user */
    u64 regs_intr_mask;    /* attr.sample_regs_intr */
    int branch_hw_index;   /* attr.branch_sample_type & PERF_SAMPLE_BRANCH_HW_INDEX */
} SampleSpec;

typedef struct {
    PyObject_HEAD
    PyObject *name;        /* str: "sys:name" or "sys:alias" — the value of _event */
    PyObject *handler;     /* callable or None */
    PyObject *index;       /* dict: field name -> int position in descs */
    PyObject *keys;        /* tuple of field names in display order */
    PyObject *info;        /* anything Python wants to hang on it (format, selector) */
    SampleSpec sample;     /* perf samples: how the raw part is laid out */
    PyObject *reg_names;   /* perf samples: tuple, register name by sample_regs_* bit */
    long long budget;      /* events still to deliver to this class (-N in its options); -1: no limit */
    long long over_budget; /* events after its budget was spent: not delivered */
    FieldDesc *descs;
    Py_ssize_t nr_descs;
    NameSlot *by_identity; /* open-addressed table of the interned names in keys */
    size_t identity_mask;
    long long delivered;   /* events given to the handler */
    long long dropped;     /* events with no handler */
} EventClassObject;

extern PyTypeObject EventClassType;
int eventclass_ready(EventClassObject *cls);

/* ---------------------------------------------------------------------------------------- */
/* PerfEvent (perf_event.c): one event, owning a copy of its record's bytes                  */

typedef struct {
    PyObject_VAR_HEAD
    EventClassObject *cls;
    PyObject *callchain;   /* resolved on first access */
    u64 time;
    u64 period;
    u32 pid, tid, cpu;
    u32 raw_size;
    u32 nr_frames;
    /* raw record (raw_size bytes, padded to 8) then nr_frames u64 */
    u64 data[1];
} PerfEventObject;

extern PyTypeObject PerfEventType;

static inline const u8 *ev_raw(PerfEventObject *ev)
{
    return (const u8 *)ev->data;
}

static inline const u64 *ev_frames(PerfEventObject *ev)
{
    return (const u64 *)((const u8 *)ev->data + (((size_t)ev->raw_size + 7) & ~(size_t)7));
}

/* u64 items of data (beyond the first, which is in the base size) an event of rec needs. */
static inline Py_ssize_t event_items(const Record *rec)
{
    size_t bytes = (((size_t)rec->raw_size + 7) & ~(size_t)7) + (size_t)rec->nr_frames * 8;
    return bytes > 8 ? (Py_ssize_t)((bytes + 7) / 8 - 1) : 0;
}

PerfEventObject *perf_event_alloc(EventClassObject *cls, Py_ssize_t items);
PerfEventObject *perf_event_new(EventClassObject *cls, const Record *rec);   /* alloc + fill */

/*
 * The one way a Record becomes an event's contents, for every path (drain, --order queue,
 * make_event): copy it into an event with room for it (new, or recycled). Whole words are read (a
 * Record's raw part is readable up to its padding); the bytes past raw_size in the last word
 * are cleared, so an event's padding reads as zeros wherever its record came from.
 */
static inline void perf_event_fill(PerfEventObject *ev, const Record *rec)
{
    u32 raw_size = rec->raw_size;
    size_t words = ((size_t)raw_size + 7) / 8;
    ev->time = rec->time;
    ev->period = rec->period;
    ev->pid = rec->pid;
    ev->tid = rec->tid;
    ev->cpu = rec->cpu;
    ev->raw_size = raw_size;
    ev->nr_frames = rec->nr_frames;
    for (size_t i = 0; i < words; i++)
        memcpy(&ev->data[i], rec->raw + 8 * i, 8);     /* one load each, aligned or not */
    if (raw_size & 7) {     /* keep the raw_size & 7 bytes that come first in memory */
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        ev->data[words - 1] &= ~(u64)0 << (64 - 8 * (raw_size & 7));
#else
        ev->data[words - 1] &= ~(u64)0 >> (64 - 8 * (raw_size & 7));
#endif
    }
    if (rec->nr_frames)
        memcpy(ev->data + words, rec->frames, (size_t)rec->nr_frames * 8);
}

/* fields.c: a field's value; the position of a field name (-1, no exception: no such field) */
PyObject *decode_field(PerfEventObject *ev, const FieldDesc *d);
Py_ssize_t field_position(PerfEventObject *ev, PyObject *name);

/* callchain.c */
PyObject *frames_tuple(PerfEventObject *ev);
PyObject *get_callchain(PerfEventObject *ev);

/* module.c: set from Python by set_hooks() and set_realtime_offset() */
extern PyObject *hook_print;       /* print_event(event, timestamp, callchain) */
extern PyObject *hook_callchain;   /* resolve_callchain(event_class, pid, frames_tuple, event) -> list */
extern int callchain_always;       /* call it for events without frames too (their Python frames
                                      may come from elsewhere: a profiler's side ring) */
extern long long realtime_offset;  /* CLOCK_REALTIME - CLOCK_MONOTONIC, ns */

/* ---------------------------------------------------------------------------------------- */
/* --order (order.c): a sorted queue per ring, merged by a heap of their heads             */

/* An event, or a loss marker, waiting for its time to come. */
typedef struct {
    u64 time;
    u64 seq;               /* arrival order: ties on time keep it */
    PyObject *ev;          /* a PerfEvent, or NULL for a loss marker */
    u64 lost;              /* loss marker: how many */
    u64 lost_start;        /* loss marker: time of the last event before the gap */
} Pending;

/*
 * A ring's pending entries, sorted by (time, seq), in a circular array. A ring's records come
 * nearly in time order (a program stamps its record just before it reserves or writes it, and
 * programs do not nest on a CPU), so an entry goes in from the back, past the few newer ones;
 * the oldest leaves from the front. Inserting costs as many steps as entries it passes: fine
 * for this, not for a ring whose records could arrive far out of time order.
 */
typedef struct {
    Pending *items;
    size_t head, len, cap;     /* cap: 0 or a power of two */
} OrderQueue;

/*
 * All the queues, and a binary heap of the ones that hold entries, keyed by their heads:
 * finding the oldest entry of N rings costs log N, not N (one ring per CPU per perf source
 * is coming). Heads compare by (time, seq); seq counts arrivals across all queues, so it
 * never ties and the order is the one a scan of the heads gave.
 */
typedef struct {
    OrderQueue *queues;        /* one per ring, same index */
    int nr_queues;
    u64 seq;                   /* next arrival number, across all queues */
    int *heap;                 /* indexes of the non-empty queues, oldest head first */
    int *heap_pos;             /* per queue: its place in heap, -1 when empty */
    int heap_len;
} Order;

int order_add_queue(Order *o);
/* An event (lost = 0), or a loss marker (ev = NULL), joins a queue. The fields go in registers:
 * a Pending built by the caller and read here wider than written stalled on store forwarding. */
int order_insert(Order *o, int queue, u64 time, PyObject *ev, u64 lost, u64 lost_start);
const Pending *order_oldest(const Order *o);           /* NULL if nothing waits */
Pending order_pop(Order *o);                           /* the oldest; only if one waits */
size_t order_len(const Order *o);
void order_clear(Order *o);

/* ---------------------------------------------------------------------------------------- */
/* Rings and the Reader (reader.c)                                                           */

/* A BPF_MAP_TYPE_RINGBUF mmapped by us (bpf_ring.c). */
typedef struct {
    size_t data_size;          /* power of two */
    size_t page_size;
    volatile u64 *consumer;    /* consumer page (rw) */
    volatile u64 *producer;    /* producer page (ro) */
    const u8 *data;            /* data pages, mapped twice back to back */
    size_t prod_map_len;
} BpfRing;

/*
 * A perf_event mmap ring (perf_ring.c): a perf_event_mmap_page, then data pages, mapped once.
 * Two kinds of records come through one:
 *   PERF_RING_SAMPLES     a profiler source's samples, decoded by its sample_type; every
 *                         sample is of one class (cls); PERF_RECORD_LOST counts are losses.
 *   PERF_RING_BPF_OUTPUT  a BPF program's bpf_perf_event_output() records (--perf-buffer): the
 *                         RAW member holds a struct ep_sample record, as in the BPF ring
 *                         buffer; the program counts its own losses, so PERF_RECORD_LOST
 *                         (the same losses, counted by the kernel) is only tallied.
 */
enum perf_ring_kind {
    PERF_RING_SAMPLES,
    PERF_RING_BPF_OUTPUT,
};

typedef struct {
    enum perf_ring_kind kind;
    u32 cls;                   /* SAMPLES: the class of its samples */
    u32 cpu;                   /* the CPU its events are on (samples without PERF_SAMPLE_CPU) */
    SampleSpec spec;           /* SAMPLES: the events' layout */
    /* SAMPLES: where the Record's members sit in a body (perf_ring_open works them out) */
    u32 off_tid, off_time, off_cpu, off_period, off_rest;   /* ~0u: absent; off_rest: READ's */
    u32 lost_off_time, lost_off_cpu;                        /* in a PERF_RECORD_LOST body */
    void *meta;                /* struct perf_event_mmap_page */
    size_t map_len;
    const u8 *data;
    size_t data_size;          /* power of two */
    u8 *copy;                  /* a record that wraps the ring's end, made linear */
    size_t copy_cap;
    /* tallies */
    long long samples;
    long long lost_records;    /* what PERF_RECORD_LOST records said */
    long long throttled, unthrottled;
    long long corrupt;         /* samples shorter than their members, and bad headers (the ring
                                  is then skipped to data_head): the ring is not as perf writes it */
} PerfRing;

/*
 * A ring the Reader reads. Each kind has a reader that turns its records into Records for
 * deliver_record(); reader.c's ring_drain() and ring_release() choose it by kind.
 */
enum ring_kind {
    RING_BPF,                  /* bpf_ring.c */
    RING_PERF,                 /* perf_ring.c */
};

typedef struct {
    enum ring_kind kind;
    union {
        BpfRing bpf;
        PerfRing perf;
    } u;
} Ring;

#define MAX_TRACKED_CPUS 4096

typedef struct {
    PyObject_HEAD
    PyObject *classes;         /* tuple of EventClass: Record.cls indexes it */
    PyObject *lost_handler;    /* the script's __lost__(start, end), or None */
    Ring *rings;
    int nr_rings;
    Order order;               /* --order: one queue per ring */
    u64 last_time[MAX_TRACKED_CPUS];  /* ordered mode, per CPU: time of the last record (loss bounds) */
    /* accounting */
    long long delivered;       /* events given to a handler */
    long long records;         /* records read from rings */
    long long lost;            /* records the kernel could not write, or discard() skipped */
    long long discarded;       /* records discard() skipped (in lost too) */
    long long budget;          /* events still to deliver (-N), -1 = unlimited */
    int stop;                  /* set by stop(): drain returns at the next record */
    int draining;              /* in drain(): handlers run; the rings must stay as they are */
    PerfEventObject *spare;    /* the last event, if its handler did not keep it: reused */
} ReaderObject;

extern PyTypeObject ReaderType;

/* ---------------------------------------------------------------------------------------- */
/* Delivery (deliver.h inline, deliver.c out of line)                                       */

enum deliver_mode {
    DELIVER_NOW,               /* to the handler at once, in a recycled event */
    DELIVER_ORDERED,           /* into the ring's --order queue */
    DELIVER_DISCARD,           /* discard(): counted as lost, not delivered */
};

/* deliver.c: the parts of delivery that are not per event, or that call into the script */
int deliver_lost(ReaderObject *self, u64 lost, u64 start, u64 end);
int handler_failed(void);
int deliver_pending(ReaderObject *self, u64 horizon, int all);
void discard_pending(ReaderObject *self);
long long handler_error_count(void);

/* bpf_ring.c */
int bpf_ring_open(BpfRing *r, int map_fd, size_t data_size);   /* -1: OSError set */
void bpf_ring_close(BpfRing *r);
int bpf_ring_drain(ReaderObject *self, int ring, BpfRing *r, enum deliver_mode mode, long long *count);

/* perf_ring.c; perf_ring_open takes the ring's kind, cls, cpu and spec as set in *r */
int perf_ring_open(PerfRing *r, int fd, size_t data_pages);    /* -1: OSError set */
void perf_ring_close(PerfRing *r);
int perf_ring_drain(ReaderObject *self, int ring, PerfRing *r, enum deliver_mode mode, long long *count);

#endif /* EBPFPROF_RING_H */
