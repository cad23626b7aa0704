/**
 * bpf/tracepoint.c: the function of one fixed-size tracepoint: gate, task check, filter, then
 * its record copied straight into a reserved ring record with direct loads.
 *
 * A template (drop this block, then string.Template): codegen/program.py (_program_function)
 * fills ${index} (the selector id in the header), ${comment}, ${fn}, ${task_check} (statements,
 * may be only a comment), ${filter_fn} (int f(void *ctx), or ep_keep_all), ${raw_size} (the
 * record's size, >= 8), ${words} (raw_size in u64s, rounded up), ${copy} (statements copying
 * bytes 8..raw_size of ctx to dst) and ${event_id}. Needs prelude.h and a ring (ring_bpf.h or
 * ring_perf.h) before it, and task_filter.h if ${task_check} calls ep_task_wanted().
 * Verifier: a tracepoint program; ${copy} reads ctx only at constant offsets below raw_size
 *           (checked at attach against the tracepoint's record).
 * Use:      for syscalls:sys_enter_getppid (12 bytes): raw_size=12, words=2,
 *           copy="*(u32 *)(dst + 8) = *(u32 *)(ctx + 8);", then attach fn to it.
 */
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
