/* selector ${index}: ${comment} */
int ${fn}(void *ctx)
{
	struct ep_cpu_state *st;
	struct ep_sample *s;
	u32 zero = 0;

	if (!ep_gate_open())
		return EP_DONE;
${task_check}
	if (!${filter_fn}(ctx))
		return EP_DONE;
	st = ep_cpu_state.lookup(&zero);
	if (!st)
		return EP_DONE;
	s = ep_reserve(sizeof(*s) + ${words} * 8);
	if (!s) {
		st->lost++;
		return EP_DONE;
	}
	ep_fill_header(s, st, ${index}, 0, ${raw_size});
	/*
	 * Copy the record with direct loads (constant offsets: cheaper than a helper call),
	 * never past its end (the kernel refuses programs that read beyond a record's size).
	 * Its first 8 bytes hold a pt_regs pointer, not the common header: skip them.
	 */
	{
		u8 *dst = (u8 *)(s + 1);
${copy}
	}
	ep_fill_common(s + 1, ${event_id}, s->tid);
	ep_submit(ctx, s, sizeof(*s) + ${words} * 8, st);
	return EP_DONE;
}
