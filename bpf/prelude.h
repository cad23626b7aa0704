/**
 * bpf/prelude.h: the run's gate (ep_gate), per-CPU loss state (ep_cpu_state), the header and
 * common-field writers (ep_fill_header, ep_fill_common), EP_DONE, and the keep-everything
 * filters ep_keep_all / ep_any_cpu.
 *
 * Needs:    struct ep_sample (ep_sample.h) before it. Maps: BPF_ARRAY ep_gate[1] (user space
 *           stores 1 at [0] to open it), BPF_PERCPU_ARRAY ep_cpu_state[1]. Helpers:
 *           bpf_get_current_pid_tgid, bpf_ktime_get_ns, bpf_get_smp_processor_id (any tracing
 *           or perf_event program).
 * Verifier: ep_fill_header(s, st, ...) writes 32 bytes at s and reads st: both checked
 *           non-NULL (a reservation, a map value); ep_fill_common(raw, ...) writes 8 bytes.
 * Use:      paste its text into the program, after ep_sample.h: BCC rewrites map calls
 *           (ep_gate.lookup()) only in the text it is given, not in #included files.
 *   if (!ep_gate_open())
 *           return EP_DONE;
 *   st = ep_cpu_state.lookup(&zero);
 *   ...
 *   ep_fill_header(s, st, 0, 0, 16);
 */
/*
 * ebpfprof prelude: the record every program writes, the ring it goes to, loss accounting.
 *
 * Every selector of a run writes to one ring, ep_ring (bpf/ring_bpf.h or, with --perf-buffer,
 * bpf/ring_perf.h, pasted after this file). Each record is
 *   struct ep_sample | raw tracepoint record (raw_size bytes, padded to 8) | u64 frames[nr_frames]
 * User space (ebpfprof/_ring/) reads it through the same header, bpf/ep_sample.h.
 */
#define EP_CONTEXT_KERNEL ((u64)-128)   /* PERF_CONTEXT_KERNEL: kernel frames follow */
#define EP_CONTEXT_USER   ((u64)-512)   /* PERF_CONTEXT_USER: user frames follow */

/* struct ep_sample, the header of each record: bpf/ep_sample.h, pasted before this file. */

/* The first 8 bytes of a tracepoint record as the format file describes them. */
struct ep_common {
	u16 common_type;
	u8 common_flags;
	u8 common_preempt_count;
	s32 common_pid;
};

/*
 * A BPF program cannot read the real common header: the kernel stores a pt_regs pointer
 * there before it runs BPF and fills the header only afterwards, for perf. What BPF can know
 * is set: the event id and the thread. Irq state, resched flags and preempt depth are not
 * visible (they would need per-CPU kernel data), so flags and depth are 0 and event.print()
 * shows 'X' (unknown) in the irqs-off column.
 */

/*
 * What every program returns: 1, so that other perf users of the tracepoint (perf stat,
 * perf record, another tracer) still see the event. 0 would end it for all of them on this
 * CPU (perf_trace_run_bpf_submit skips perf_tp_event). Our own attaching perf event is
 * disabled, so perf_tp_event has nothing to do for it (kernel/perf_abi.py).
 */
#define EP_DONE 1

/*
 * The run's gate: 0 while the run attaches, 1 from the moment it starts (one store, so every
 * program of the run starts at the same instant), 0 again from the moment it stops. Every
 * program checks it first: an event outside the run is neither recorded nor counted lost.
 */
BPF_ARRAY(ep_gate, u32, 1);

static __always_inline int ep_gate_open(void)
{
	u32 zero = 0;
	u32 *open = ep_gate.lookup(&zero);

	return open && *open;
}

/* Per-CPU state: records lost since the last one written, records since the last wakeup. */
struct ep_cpu_state {
	u32 lost;
	u32 since_wakeup;
};
BPF_PERCPU_ARRAY(ep_cpu_state, struct ep_cpu_state, 1);

static __always_inline void ep_fill_header(struct ep_sample *s, struct ep_cpu_state *st,
					   u16 selector, u16 nr_frames, u32 raw_size)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();

	s->time = bpf_ktime_get_ns();
	s->pid = pid_tgid >> 32;
	s->tid = (u32)pid_tgid;
	s->cpu = bpf_get_smp_processor_id();
	s->selector = selector;
	s->nr_frames = nr_frames;
	s->lost = st->lost;
	s->raw_size = raw_size;
	st->lost = 0;
}

/* Write the common header that the kernel would have filled for perf. */
static __always_inline void ep_fill_common(void *raw, u16 event_id, u32 tid)
{
	struct ep_common *c = raw;

	c->common_type = event_id;
	c->common_flags = 0;
	c->common_preempt_count = 0;
	c->common_pid = tid;
}

/* Used where a selector has no filter or no CPU restriction. */
static __always_inline int ep_keep_all(void *ctx)
{
	return 1;
}

static __always_inline int ep_any_cpu(u32 cpu)
{
	return 1;
}
