/*
 * The BPF ring buffer reader: a BPF_MAP_TYPE_RINGBUF mmapped the way libbpf does (no libbpf
 * callback, no ctypes), walked in place; each committed record's struct ep_sample header
 * (bpf/ep_sample.h) becomes a Record for deliver_record().
 */
#include "ring.h"
#include "deliver.h"
#include "ep_sample.h"

#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

/* BPF ring buffer record header (kernel/bpf/ringbuf.c) */
#define RB_BUSY_BIT    (1U << 31)
#define RB_DISCARD_BIT (1U << 30)
#define RB_HDR_SZ      8

#define SIGNAL_CHECK_EVERY 1024
#define PREFETCH_AHEAD     2048   /* bytes of records asked for ahead of the one being read */
#define CACHE_LINE         64

void bpf_ring_close(BpfRing *r)
{
    if (r->consumer && r->consumer != MAP_FAILED)
        munmap((void *)r->consumer, r->page_size);
    if (r->producer && r->producer != MAP_FAILED)
        munmap((void *)r->producer, r->prod_map_len);
    r->consumer = NULL;
    r->producer = NULL;
}

/* Map the consumer page (rw), the producer page and the data pages twice (ro). */
int bpf_ring_open(BpfRing *r, int map_fd, size_t data_size)
{
    *r = (BpfRing){0};
    r->data_size = data_size;
    r->page_size = (size_t)sysconf(_SC_PAGESIZE);
    r->consumer = mmap(NULL, r->page_size, PROT_READ | PROT_WRITE, MAP_SHARED, map_fd, 0);
    if (r->consumer == MAP_FAILED) {
        r->consumer = NULL;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    r->prod_map_len = r->page_size + 2 * r->data_size;
    r->producer = mmap(NULL, r->prod_map_len, PROT_READ, MAP_SHARED, map_fd, (off_t)r->page_size);
    if (r->producer == MAP_FAILED) {
        r->producer = NULL;
        int saved = errno;
        bpf_ring_close(r);
        errno = saved;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    r->data = (const u8 *)r->producer + r->page_size;
    return 0;
}

/*
 * Decode a record into *rec: 0 if it is whole and ours, -1 to skip it rather than misdecode
 * it. Records sit 8-aligned in the ring and padded to 8, so the header is read in place and
 * the raw part is readable up to its padding, as Record asks. Its class is deliver_record()'s
 * to check.
 */
static inline int bpf_record(const u8 *data, u32 len, Record *rec)
{
    if (len < sizeof(struct ep_sample))
        return -1;
    const struct ep_sample *s = (const struct ep_sample *)data;
    size_t raw_padded = ((size_t)s->raw_size + 7) & ~(size_t)7;
    size_t need = sizeof(*s) + (s->nr_frames ? raw_padded + (size_t)s->nr_frames * 8 : s->raw_size);
    if (need > len)
        return -1;
    rec->time = s->time;
    rec->period = 1;
    rec->lost = s->lost;
    rec->pid = s->pid;
    rec->tid = s->tid;
    rec->cpu = s->cpu;
    rec->cls = s->selector;
    rec->raw = (const u8 *)(s + 1);
    rec->raw_size = s->raw_size;
    rec->frames = (const u64 *)(rec->raw + raw_padded);
    rec->nr_frames = s->nr_frames;
    return 0;
}

static inline u64 load_acquire(volatile u64 *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline u32 load_acquire32(const volatile u32 *p)
{
    return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static inline void store_release(volatile u64 *p, u64 v)
{
    __atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/*
 * Hand what the ring holds now to deliver_record(), while the reader wants records.
 * *count: ring entries consumed. -1 on a Python error.
 */
int bpf_ring_drain(ReaderObject *self, int ring, BpfRing *r, enum deliver_mode mode, long long *count)
{
    u64 cons = load_acquire(r->consumer);
    u64 prod = load_acquire(r->producer);
    u64 mask = r->data_size - 1;
    const u8 *data = r->data;
    /* Records were written by another CPU: ask for every line of the committed part ahead of
     * the reader once, and never past prod (lines still being written stay the producer's). */
    u64 fetched = cons & ~(u64)(CACHE_LINE - 1);
    int rc = 0;
    while (cons < prod && reader_wants_records(self, mode)) {
        u64 ahead = cons + PREFETCH_AHEAD < prod ? cons + PREFETCH_AHEAD : prod;
        if (fetched < cons)         /* a record longer than PREFETCH_AHEAD went by */
            fetched = cons & ~(u64)(CACHE_LINE - 1);
        for (; fetched < ahead; fetched += CACHE_LINE)
            __builtin_prefetch(data + (fetched & mask));
        const volatile u32 *hdr = (const volatile u32 *)(data + (cons & mask));
        u32 len = load_acquire32(hdr);
        if (len & RB_BUSY_BIT)
            break;  /* reserved, not yet committed: come back later */
        u32 size = len & ~(RB_BUSY_BIT | RB_DISCARD_BIT);
        Record rec;
        if (!(len & RB_DISCARD_BIT) && bpf_record((const u8 *)hdr + RB_HDR_SZ, size, &rec) == 0)
            rc = deliver_record(self, ring, &rec, mode);
        cons += (RB_HDR_SZ + size + 7) & ~(u64)7;
        (*count)++;
        if (rc < 0)
            break;
        if ((*count & (SIGNAL_CHECK_EVERY - 1)) == 0) {
            store_release(r->consumer, cons);
            if (mode != DELIVER_DISCARD && PyErr_CheckSignals() < 0) {   /* discard() runs no Python */
                rc = -1;
                break;
            }
        }
        /* prod is not re-read: one drain takes what was there when it began, so the Python
         * loop gets control back (timers, signals) even when producers never pause. */
    }
    store_release(r->consumer, cons);
    return rc;
}
