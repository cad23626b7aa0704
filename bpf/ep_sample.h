/**
 * bpf/ep_sample.h: struct ep_sample, the 32-byte header of every record a program writes.
 *
 * Needs:    u16, u32, u64 as the kernel spells them (BCC defines them); nothing else: no map, no
 *           helper, any program type. Include guard EP_SAMPLE_H.
 * Verifier: nothing (a type).
 * Use:      #include "ep_sample.h" works (cflags -I bpf/); prelude.h needs it first.
 *   struct ep_sample *s = ep_reserve(sizeof(*s) + 16);
 */
/*
 * struct ep_sample: the header of every record in the run's BPF ring buffer (ep_ring).
 *
 * The one definition for both sides: codegen/program.py pastes this text before bpf/prelude.h into the
 * generated BPF program, and the C reader #includes it (setup.py puts bpf/ on its include
 * path). A record is
 *   struct ep_sample | raw tracepoint record (raw_size bytes, padded to 8) | u64 frames[nr_frames]
 * No #include here (BCC gets this file as text): the includer defines u16, u32 and u64 as the
 * kernel spells them. Offsets and sizes below are checked against the compiled reader by
 * tests/unit/test_record_layout.py; change them together.
 */
#ifndef EP_SAMPLE_H
#define EP_SAMPLE_H

struct ep_sample {           /* offset size */
	u64 time;            /*   0    8  bpf_ktime_get_ns(): CLOCK_MONOTONIC, as our perf events */
	u32 pid;             /*   8    4  tgid */
	u32 tid;             /*  12    4 */
	u32 cpu;             /*  16    4 */
	u16 selector;        /*  20    2  index into the run's selector table */
	u16 nr_frames;       /*  22    2  u64 callchain entries after the raw record (markers included) */
	u32 lost;            /*  24    4  records this CPU could not reserve just before this one */
	u32 raw_size;        /*  28    4  bytes of the raw record after this header */
};                           /* size 32 */

#endif /* EP_SAMPLE_H */
