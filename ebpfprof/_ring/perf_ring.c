/*
 * The perf_event mmap ring reader: a perf event's ring (perf_event_mmap_page, then 2^n data
 * pages) walked in place from data_tail to data_head; each PERF_RECORD_SAMPLE becomes a
 * Record for deliver_record(). A record that wraps the ring's end is copied out first (a
 * Record is linear). PERF_RECORD_LOST is a loss (on sample rings), THROTTLE/UNTHROTTLE are
 * tallied for -v; other record types are skipped.
 */
#include "ring.h"
#include "deliver.h"
#include "sample.h"
#include "ep_sample.h"

#include <errno.h>
#include <linux/perf_event.h>
#include <sys/mman.h>
#include <unistd.h>

#define SIGNAL_CHECK_EVERY 1024
#define NO_OFFSET (~(u32)0)
#define COPY_SLACK 16          /* Record.raw is read in whole words: room past a copied record */

void perf_ring_close(PerfRing *r)
{
    if (r->meta && r->meta != MAP_FAILED)
        munmap(r->meta, r->map_len);
    r->meta = NULL;
    PyMem_Free(r->copy);
    r->copy = NULL;
    r->copy_cap = 0;
}

/* Where TID, TIME, CPU and PERIOD sit: each member before READ is one u64, so a member's
 * offset is 8 times the number of members before it that sample_type holds. */
static u32 prefix_offset(u64 sample_type, u64 member)
{
    static const u64 order[] = {
        PERF_SAMPLE_IDENTIFIER, PERF_SAMPLE_IP, PERF_SAMPLE_TID, PERF_SAMPLE_TIME, PERF_SAMPLE_ADDR,
        PERF_SAMPLE_ID, PERF_SAMPLE_STREAM_ID, PERF_SAMPLE_CPU, PERF_SAMPLE_PERIOD,
    };
    u32 off = 0;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (order[i] == member)
            return (sample_type & member) ? off : NO_OFFSET;
        if (sample_type & order[i])
            off += 8;
    }
    return off;        /* member 0: the end of the prefix, where READ begins */
}

/* The sample_id trailer of non-sample records (attr.sample_id_all): TID TIME ID STREAM_ID
 * CPU IDENTIFIER, those of sample_type. `after` is the record's own part. */
static u32 id_offset(u64 sample_type, u64 member, u32 after)
{
    static const u64 order[] = {
        PERF_SAMPLE_TID, PERF_SAMPLE_TIME, PERF_SAMPLE_ID, PERF_SAMPLE_STREAM_ID, PERF_SAMPLE_CPU,
    };
    u32 off = after;
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        if (order[i] == member)
            return (sample_type & member) ? off : NO_OFFSET;
        if (sample_type & order[i])
            off += 8;
    }
    return NO_OFFSET;
}

/* Map 1 + data_pages pages of fd (a perf event, or a test's memfd laid out like one). */
int perf_ring_open(PerfRing *r, int fd, size_t data_pages)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    r->map_len = page * (1 + data_pages);
    /* populated now: reading a first-touched ring page would be a page fault of ours, which a
     * system-wide page-faults run would record */
    r->meta = mmap(NULL, r->map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (r->meta == MAP_FAILED) {
        r->meta = NULL;
        PyErr_SetFromErrno(PyExc_OSError);
        return -1;
    }
    struct perf_event_mmap_page *m = r->meta;
    /* and the first write to data_tail (a write fault on a shared page) made now, not while
     * recording */
    __atomic_store_n(&m->data_tail, __atomic_load_n(&m->data_tail, __ATOMIC_ACQUIRE), __ATOMIC_RELEASE);
    /* data_offset and data_size are the kernel's since Linux 4.1; 0 before that */
    size_t off = m->data_offset ? (size_t)m->data_offset : page;
    size_t size = m->data_size ? (size_t)m->data_size : page * data_pages;
    if (off + size > r->map_len || !size || (size & (size - 1))) {
        perf_ring_close(r);
        PyErr_SetString(PyExc_ValueError, "perf ring: data area is not a power of two inside the mapping");
        return -1;
    }
    r->data = (const u8 *)r->meta + off;
    r->data_size = size;
    u64 st = r->spec.sample_type;
    r->off_tid = prefix_offset(st, PERF_SAMPLE_TID);
    r->off_time = prefix_offset(st, PERF_SAMPLE_TIME);
    r->off_cpu = prefix_offset(st, PERF_SAMPLE_CPU);
    r->off_period = prefix_offset(st, PERF_SAMPLE_PERIOD);
    r->off_rest = prefix_offset(st, 0);
    r->lost_off_time = id_offset(st, PERF_SAMPLE_TIME, 16);
    r->lost_off_cpu = id_offset(st, PERF_SAMPLE_CPU, 16);
    return 0;
}

static inline u64 ld64(const u8 *p)
{
    u64 v;
    memcpy(&v, p, 8);
    return v;
}

static inline u32 ld32(const u8 *p)
{
    u32 v;
    memcpy(&v, p, 4);
    return v;
}

/* A profiler sample into *rec: 0, or -1 if it is shorter than its members say. */
static inline int sample_record(const PerfRing *r, const u8 *body, u32 size, Record *rec)
{
    u64 st = r->spec.sample_type;
    if (r->off_rest > size)
        return -1;
    rec->pid = r->off_tid != NO_OFFSET ? ld32(body + r->off_tid) : 0;
    rec->tid = r->off_tid != NO_OFFSET ? ld32(body + r->off_tid + 4) : 0;
    rec->time = r->off_time != NO_OFFSET ? ld64(body + r->off_time) : 0;
    rec->cpu = r->off_cpu != NO_OFFSET ? ld32(body + r->off_cpu) : r->cpu;
    rec->period = r->off_period != NO_OFFSET ? ld64(body + r->off_period) : 1;
    rec->lost = 0;
    rec->cls = r->cls;
    rec->raw = body;
    rec->raw_size = size;
    rec->frames = NULL;
    rec->nr_frames = 0;
    if (st & PERF_SAMPLE_CALLCHAIN) {
        u32 pos = r->off_rest;
        if (st & PERF_SAMPLE_READ) {
            if (r->spec.read_format & PERF_FORMAT_GROUP) {
                SampleLayout lay;
                if (sample_walk(body, size, &r->spec, 5, &lay) < 0)
                    return -1;
                pos = lay.off[5];
            } else {
                pos += read_value_size(r->spec.read_format);
            }
        }
        if (pos + 8 > size)
            return -1;
        u64 nr = ld64(body + pos);
        if (nr > (size - pos - 8) / 8)
            return -1;
        rec->frames = (const u64 *)(body + pos + 8);
        rec->nr_frames = (u32)nr;
    }
    return 0;
}

/* A --perf-buffer record: the RAW member holds a struct ep_sample record (bpf/ep_sample.h). */
static inline int bpf_output_record(const u8 *body, u32 size, Record *rec)
{
    if (size < 4)
        return -1;
    u32 raw_len = ld32(body);
    if (raw_len > size - 4 || raw_len < sizeof(struct ep_sample))
        return -1;
    const u8 *data = body + 4;
    struct ep_sample s;
    memcpy(&s, data, sizeof(s));
    size_t raw_padded = ((size_t)s.raw_size + 7) & ~(size_t)7;
    size_t need = sizeof(s) + (s.nr_frames ? raw_padded + (size_t)s.nr_frames * 8 : s.raw_size);
    if (need > raw_len)
        return -1;
    rec->time = s.time;
    rec->period = 1;
    rec->lost = s.lost;
    rec->pid = s.pid;
    rec->tid = s.tid;
    rec->cpu = s.cpu;
    rec->cls = s.selector;
    rec->raw = data + sizeof(s);
    rec->raw_size = s.raw_size;
    rec->frames = (const u64 *)(rec->raw + raw_padded);   /* read with memcpy: may be unaligned */
    rec->nr_frames = s.nr_frames;
    return 0;
}

/* The record at offset off of size bytes, linear: in place, or copied if it wraps the end or
 * ends so near it that reading its last word whole would run off the mapping. */
static inline const u8 *linear_record(PerfRing *r, u64 off, u32 size)
{
    if (off + size + 8 <= r->data_size)
        return r->data + off;
    if (r->copy_cap < (size_t)size + COPY_SLACK) {
        u8 *c = PyMem_Realloc(r->copy, (size_t)size + COPY_SLACK);
        if (!c) {
            PyErr_NoMemory();
            return NULL;
        }
        r->copy = c;
        r->copy_cap = (size_t)size + COPY_SLACK;
    }
    size_t first = r->data_size - off < size ? r->data_size - off : size;
    memcpy(r->copy, r->data + off, first);
    memcpy(r->copy + first, r->data, size - first);
    memset(r->copy + size, 0, COPY_SLACK);
    return r->copy;
}

static inline int lost_record(ReaderObject *self, int ring, PerfRing *r, const u8 *body, u32 size,
                              enum deliver_mode mode)
{
    if (size < 16)
        return 0;
    u64 lost = ld64(body + 8);
    r->lost_records += (long long)lost;
    if (r->kind == PERF_RING_BPF_OUTPUT || !lost)
        return 0;    /* the program counted these itself and reports them in its next record */
    u64 time = r->lost_off_time != NO_OFFSET && r->lost_off_time + 8 <= size ? ld64(body + r->lost_off_time) : 0;
    u32 cpu = r->lost_off_cpu != NO_OFFSET && r->lost_off_cpu + 4 <= size ? ld32(body + r->lost_off_cpu) : r->cpu;
    return deliver_loss(self, ring, lost, time, cpu, mode);
}

/*
 * Hand what the ring holds now to delivery, while the reader wants records. *count: records
 * consumed. -1 on a Python error. As the BPF reader does, one drain takes what was there when
 * it began (data_head is read once).
 */
int perf_ring_drain(ReaderObject *self, int ring, PerfRing *r, enum deliver_mode mode, long long *count)
{
    struct perf_event_mmap_page *m = r->meta;
    u64 head = __atomic_load_n(&m->data_head, __ATOMIC_ACQUIRE);
    u64 tail = m->data_tail;
    u64 mask = r->data_size - 1;
    int rc = 0;
    long long n = 0;
    while (tail < head && reader_wants_records(self, mode)) {
        u64 off = tail & mask;
        struct perf_event_header h;      /* records are 8-aligned: a header never wraps */
        if (tail & 7) {
            r->corrupt++;                /* data_tail is ours and never odd; if it were, a header could wrap */
            tail = head;
            break;
        }
        memcpy(&h, r->data + off, sizeof(h));
        /* A size larger than the ring would have linear_record() copy past its end. */
        if (h.size < sizeof(h) || (h.size & 7) || h.size > r->data_size || tail + h.size > head) {
            r->corrupt++;
            tail = head;                 /* a corrupt ring: skip what it holds, rather than loop */
            break;
        }
        const u8 *rec_bytes = linear_record(r, off, h.size);
        if (!rec_bytes) {
            rc = -1;
            break;
        }
        const u8 *body = rec_bytes + sizeof(h);
        u32 size = h.size - (u32)sizeof(h);
        Record rec;
        switch (h.type) {
        case PERF_RECORD_SAMPLE:
            r->samples++;
            if (r->kind == PERF_RING_SAMPLES ? sample_record(r, body, size, &rec) == 0
                                             : bpf_output_record(body, size, &rec) == 0)
                rc = deliver_record(self, ring, &rec, mode);
            else
                r->corrupt++;            /* shorter than its members say: skipped, not misread */
            break;
        case PERF_RECORD_LOST:
            rc = lost_record(self, ring, r, body, size, mode);
            break;
        case PERF_RECORD_THROTTLE:
            r->throttled++;
            break;
        case PERF_RECORD_UNTHROTTLE:
            r->unthrottled++;
            break;
        }
        tail += h.size;
        n++;
        if (rc < 0)
            break;
        if ((n & (SIGNAL_CHECK_EVERY - 1)) == 0) {
            __atomic_store_n(&m->data_tail, tail, __ATOMIC_RELEASE);
            if (mode != DELIVER_DISCARD && PyErr_CheckSignals() < 0) {
                rc = -1;
                break;
            }
        }
    }
    __atomic_store_n(&m->data_tail, tail, __ATOMIC_RELEASE);
    *count += n;
    return rc;
}
