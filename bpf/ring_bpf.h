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
