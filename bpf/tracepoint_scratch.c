/* selector ${index}: ${comment} */
int ${fn}(void *ctx)
{
	struct ep_cpu_state *st;
	struct ep_scratch *sc;
	u32 zero = 0, size = ${raw_size}, raw_padded, nr_frames, total;

	if (!ep_gate_open())
		return EP_DONE;
${task_check}
	if (!${filter_fn}(ctx))
		return EP_DONE;
	st = ep_cpu_state.lookup(&zero);
	sc = ep_scratch.lookup(&zero);
	if (!st || !sc)
		return EP_DONE;
${dynamic_size}
	raw_padded = ep_copy_raw(sc, ctx, size, ${event_id});
	nr_frames = ep_copy_stack(sc, ctx, raw_padded, ${kernel_stack}, ${user_stack}, ${max_stack});
	ep_fill_header(&sc->s, st, ${index}, nr_frames, sc->s.raw_size);
	total = sizeof(sc->s) + raw_padded + nr_frames * sizeof(u64);
	/* The verifier needs a bound it can see; total is below EP_SCRATCH_SIZE already. */
	total &= EP_SCRATCH_SIZE - 1;
	ep_output(ctx, &sc->s, total, st);
	return EP_DONE;
}
