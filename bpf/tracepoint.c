/* selector ${index}: ${comment} */
int ${fn}(void *ctx)
{
	struct ep_cpu_state *st;
	struct ep_sample *s;
	u32 zero = 0;

	if (!ep_task_wanted() || !${want_cpu}(bpf_get_smp_processor_id()))
		return 0;
	if (!${filter_fn}(ctx))
		return 0;
	st = ep_cpu_state.lookup(&zero);
	if (!st)
		return 0;
	s = ep_ring.ringbuf_reserve(sizeof(*s) + ${raw_size});
	if (!s) {
		st->lost++;
		return 0;
	}
	ep_fill_header(s, st, ${index}, 0, ${raw_size});
	/* The first 8 bytes of ctx hold a pt_regs pointer, not the common header. */
	bpf_probe_read_kernel((void *)(s + 1) + 8, ${raw_size} - 8, ctx + 8);
	ep_fill_common(s + 1, ${event_id}, s->tid);
	ep_ring.ringbuf_submit(s, ep_wakeup_flags(st));
	return 0;
}
