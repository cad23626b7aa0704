/**
 * bpf/ring_bpf.h: ep_ring as one BPF ring buffer: ep_reserve / ep_submit (in place) and
 * ep_output (a copy), with the wakeup batching and loss counting of a run.
 *
 * Needs:    Linux 5.8 (BPF_MAP_TYPE_RINGBUF: bpf_ringbuf_reserve/submit/output). prelude.h
 *           before it (struct ep_cpu_state). Defined before it: EP_RING_PAGES (a power of two)
 *           and EP_WAKEUP_EVERY (wake the reader every N records per CPU; 1: every record).
 *           ring_perf.h is the other ring: same four names, include one of the two.
 * Verifier: ep_reserve's size must be a constant it can see; the pointer it returns is checked
 *           for NULL and then given to ep_submit exactly once. ep_output's size must be bounded
 *           and readable at s.
 * Use:      paste its text (it calls map methods: BCC rewrites those only in its own text).
 *   s = ep_reserve(sizeof(*s) + 16);
 *   if (!s) {
 *           st->lost++;
 *           return EP_DONE;
 *   }
 *   ep_fill_header(s, st, 0, 0, 16);
 *   ep_submit(ctx, s, sizeof(*s) + 16, st);
 *   User space: b["ep_ring"].open_ring_buffer(callback), then b.ring_buffer_poll(), or
 *   b.ring_buffer_consume() for the records that woke nobody (EP_WAKEUP_EVERY > 1).
 */
/*
 * The run's ring: one BPF ring buffer (BPF_MAP_TYPE_RINGBUF, Linux 5.8) shared by every CPU,
 * so records reach the reader in about the order they were written. Records are reserved in
 * the ring and written in place; a full ring refuses the reservation, and the record is
 * counted lost on its CPU, reported with the next record that gets in.
 */
BPF_RINGBUF_OUTPUT(ep_ring, EP_RING_PAGES);

/* Wake the reader every EP_WAKEUP_EVERY records per CPU; a timed drain covers the rest. */
static __always_inline u64 ep_wakeup_flags(struct ep_cpu_state *st)
{
	if (++st->since_wakeup >= EP_WAKEUP_EVERY) {
		st->since_wakeup = 0;
		return BPF_RB_FORCE_WAKEUP;
	}
	return BPF_RB_NO_WAKEUP;
}

/* Room for a record of size bytes, or NULL when the ring is full. */
static __always_inline struct ep_sample *ep_reserve(u32 size)
{
	return ep_ring.ringbuf_reserve(size);
}

/* Hand a reserved record to the reader (it cannot fail). */
static __always_inline void ep_submit(void *ctx, struct ep_sample *s, u32 size, struct ep_cpu_state *st)
{
	ep_ring.ringbuf_submit(s, ep_wakeup_flags(st));
}

/* Copy a record built elsewhere (the scratch area) into the ring, or count it lost. */
static __always_inline void ep_output(void *ctx, struct ep_sample *s, u32 size, struct ep_cpu_state *st)
{
	if (ep_ring.ringbuf_output(s, size, ep_wakeup_flags(st)) != 0)
		st->lost += s->lost + 1;     /* this record, and the losses it was to report */
}
