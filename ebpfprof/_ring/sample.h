/*
 * A PERF_RECORD_SAMPLE body, laid out by the event's sample_type: where each member sits.
 *
 * The kernel writes the members it was asked for, in one fixed order (perf_output_sample() in
 * kernel/events/core.c; the uapi header's comment predates CGROUP and puts AUX too early):
 *   IDENTIFIER IP TID TIME ADDR ID STREAM_ID CPU PERIOD READ CALLCHAIN RAW BRANCH_STACK
 *   REGS_USER STACK_USER WEIGHT|WEIGHT_STRUCT DATA_SRC TRANSACTION REGS_INTR PHYS_ADDR CGROUP
 *   DATA_PAGE_SIZE CODE_PAGE_SIZE AUX
 * Several are variable-length (READ of a group, CALLCHAIN, RAW, BRANCH_STACK, the regs, the
 * user stack, AUX), so a member's offset is found by walking the ones before it. The ring
 * reader walks as far as CALLCHAIN for every sample (what a Record needs); a field read walks
 * to its member.
 */
#ifndef EBPFPROF_SAMPLE_H
#define EBPFPROF_SAMPLE_H

#include "ring.h"

#include <linux/perf_event.h>

#define SAMPLE_BITS 25              /* PERF_SAMPLE_IP (bit 0) .. PERF_SAMPLE_WEIGHT_STRUCT (bit 24) */
#define SAMPLE_ABSENT 0xffffffffu

/* Offsets (into the body, after perf_event_header) and sizes of the members present. */
typedef struct {
    u32 off[SAMPLE_BITS];           /* SAMPLE_ABSENT where sample_type lacks the bit */
    u32 len[SAMPLE_BITS];
} SampleLayout;

/* Bytes of a non-group read_format value, and of one group member. */
static inline u32 read_value_size(u64 read_format)
{
    u32 n = 8;                      /* value */
    if (read_format & PERF_FORMAT_ID)
        n += 8;
    if (read_format & PERF_FORMAT_LOST)
        n += 8;
    if (!(read_format & PERF_FORMAT_GROUP)) {
        if (read_format & PERF_FORMAT_TOTAL_TIME_ENABLED)
            n += 8;
        if (read_format & PERF_FORMAT_TOTAL_TIME_RUNNING)
            n += 8;
    }
    return n;
}

/* 0 if the reader can walk samples of spec; -1 with ValueError set if not: a sample_type or
 * read_format bit it does not know (its member would shift every one after it), or WEIGHT with
 * WEIGHT_STRUCT (one u64 in the kernel, which refuses the pair). */
int sample_spec_check(const SampleSpec *spec);

/* Walk body (size bytes) up to and including member bit `upto`: 0, or -1 if the body is
 * shorter than its members say (the sample is then skipped, not misread). */
int sample_walk(const u8 *body, u32 size, const SampleSpec *spec, int upto, SampleLayout *out);

/* The value of an event's sample member (fields.c, F_SAMPLE): d->offset is its PERF_SAMPLE_*
 * bit; d->size picks the u32 half of TID (pid 0, tid 4) and CPU (cpu 0, res 4). */
PyObject *decode_sample_member(PerfEventObject *ev, const FieldDesc *d);

#endif /* EBPFPROF_SAMPLE_H */
