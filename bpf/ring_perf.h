/**
 * bpf/ring_perf.h: ep_ring as a perf event array: the same ep_reserve / ep_submit / ep_output
 * as ring_bpf.h, through a per-CPU staging area (ep_stage) and bpf_perf_event_output().
 *
 * Needs:    BPF_MAP_TYPE_PERF_EVENT_ARRAY (any kernel with BPF tracing), BPF_PERCPU_ARRAY of
 *           EP_STAGE_SIZE bytes; prelude.h before it. User space puts one
 *           PERF_COUNT_SW_BPF_OUTPUT perf event per CPU in ep_ring. No macro to define.
 * Verifier: ctx is the program's own context (perf_submit needs it); ep_reserve can return
 *           NULL (a map lookup): check it; sizes are bounded and at most EP_STAGE_SIZE. One
 *           record at a time per CPU: a second ep_reserve returns the same area.
 * Use:      paste its text (map methods: see prelude.h), as ring_bpf.h's example.
 *   User space: b["ep_ring"].open_perf_buffer(callback), then b.perf_buffer_poll().
 */
/*
 * The run's ring, --perf-buffer (and kernels before 5.8, which have no BPF ring buffer): a
 * perf event array holding one PERF_COUNT_SW_BPF_OUTPUT event per CPU, which ebpfprof opens
 * and maps itself (sources/perf_buffer.py); bpf_perf_event_output() appends a record, as the RAW
 * member of a PERF_RECORD_SAMPLE, to the ring of the CPU it runs on. The reader is woken by
 * the events' watermark. Nothing can be reserved in a perf ring: a record is built in a
 * per-CPU staging area, then copied; a full ring refuses the copy, and the record is counted
 * lost on its CPU (the kernel's PERF_RECORD_LOST says the same; the reader only tallies it).
 */
BPF_PERF_OUTPUT(ep_ring);

#define EP_STAGE_SIZE 16384          /* the largest record a fixed-size function writes */
struct ep_stage {
	u8 bytes[EP_STAGE_SIZE];
};
BPF_PERCPU_ARRAY(ep_stage, struct ep_stage, 1);

/* Room for a record of size bytes: this CPU's staging area. */
static __always_inline struct ep_sample *ep_reserve(u32 size)
{
	u32 zero = 0;

	return (struct ep_sample *)ep_stage.lookup(&zero);
}

/* Copy a record into this CPU's perf ring, or count it lost. */
static __always_inline void ep_output(void *ctx, struct ep_sample *s, u32 size, struct ep_cpu_state *st)
{
	if (ep_ring.perf_submit(ctx, s, size) != 0)
		st->lost += s->lost + 1;     /* this record, and the losses it was to report */
}

/* A staged record goes the same way. */
static __always_inline void ep_submit(void *ctx, struct ep_sample *s, u32 size, struct ep_cpu_state *st)
{
	ep_output(ctx, s, size, st);
}
