/**
 * bpf/tracepoint_scratch.c: the function of one tracepoint with __data_loc fields or a
 * callchain: the record is built in the scratch area at its run-time size, then copied out.
 *
 * A template (drop this block, then string.Template): codegen/program.py (_program_function)
 * fills ${index}, ${comment}, ${fn}, ${task_check}, ${filter_fn}, ${raw_size} (the fixed part's
 * size), ${dynamic_size} (dynamic_size.c blocks, or a comment), ${event_id}, ${kernel_stack}
 * and ${user_stack} (0 or 1) and ${max_stack} (1..EP_MAX_STACK), ${python_stack} ("" or a
 * call of ep_python_stack, with python_stack.h pasted before). Needs prelude.h, a ring and
 * scratch.h before it.
 * Verifier: a tracepoint program; see scratch.h (the total is masked here).
 * Use:      for sched:sched_process_exec: raw_size=20, dynamic_size from dynamic_size.c for
 *           filename, kernel_stack=1, user_stack=0, max_stack=EP_MAX_STACK.
 */
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
	nr_frames = ep_copy_stack(sc, ctx, raw_padded, ${kernel_stack}, ${user_stack}, ${max_stack});${python_stack}
	ep_fill_header(&sc->s, st, ${index}, nr_frames, sc->s.raw_size);
	total = sizeof(sc->s) + raw_padded + nr_frames * sizeof(u64);
	/* The verifier needs a bound it can see; total is below EP_SCRATCH_SIZE already. */
	total &= EP_SCRATCH_SIZE - 1;
	ep_output(ctx, &sc->s, total, st);
	return EP_DONE;
}
