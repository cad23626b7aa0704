/**
 * bpf/probe.c: the function of a uprobe/uretprobe/kprobe selector: a record built in the
 * scratch area from registers, filtered like a tracepoint's, sent with an optional callchain.
 *
 * A template (drop this block, then string.Template): codegen/probe.py (probe_function) fills
 * ${index}, ${comment}, ${fn}, ${task_check}, ${event_id}, ${fill} (statements rec[i] =
 * EP_REG(ctx, OFFSET) or a constant, for i >= 1), ${strings} (statements reading string
 * arguments into sc->raw, or a comment), ${filter_fn}, ${raw_size} and ${raw_padded} (the
 * record's size and it rounded up to 8), ${kernel_stack}, ${user_stack} and ${max_stack},
 * ${python_stack} ("" or a call of ep_python_stack, with python_stack.h pasted before). Needs
 * prelude.h, a ring, scratch.h and probe_prelude.h before it.
 * Verifier: a kprobe-type program (struct pt_regs *ctx); raw_padded + frames stay inside the
 *           scratch area (raw_size at most EP_RAW_MAX - 8).
 * Use:      fill="\trec[1] = EP_REG(ctx, 112);" (di on x86-64, from BTF), raw_size=16,
 *           raw_padded=16; b.attach_uprobe(name=PATH, sym=FUNC, fn_name=fn).
 */
/* selector ${index}: ${comment} */
int ${fn}(struct pt_regs *ctx)
{
	struct ep_cpu_state *st;
	struct ep_scratch *sc;
	u32 zero = 0, nr_frames, total;
	u64 *rec;

	if (!ep_gate_open())
		return EP_PROBE_DONE;
${task_check}
	st = ep_cpu_state.lookup(&zero);
	sc = ep_scratch.lookup(&zero);
	if (!st || !sc)
		return EP_PROBE_DONE;
	/*
	 * The record is built in the scratch area, laid out as its format says (common header,
	 * then u64 fields), so the filter reads it as it reads a tracepoint's record.
	 */
	rec = (u64 *)sc->raw;
	ep_fill_common(sc->raw, ${event_id}, (u32)bpf_get_current_pid_tgid());
${fill}
${strings}
	if (!${filter_fn}(sc->raw))
		return EP_PROBE_DONE;
	nr_frames = ep_copy_stack(sc, ctx, ${raw_padded}, ${kernel_stack}, ${user_stack}, ${max_stack});${python_stack}
	ep_fill_header(&sc->s, st, ${index}, nr_frames, ${raw_size});
	total = sizeof(sc->s) + ${raw_padded} + nr_frames * sizeof(u64);
	/* The verifier needs a bound it can see; total is below EP_SCRATCH_SIZE already. */
	total &= EP_SCRATCH_SIZE - 1;
	ep_output(ctx, &sc->s, total, st);
	return EP_PROBE_DONE;
}
