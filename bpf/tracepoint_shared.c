/**
 * bpf/tracepoint_shared.c: one function for many tracepoints of a wildcard selector: which one
 * fired, and its record's size, come from the attach cookie.
 *
 * A template (drop this block, then string.Template): codegen/program.py (_shared_function)
 * fills ${first}, ${last}, ${count} and ${comment} (the comment), ${fn}, ${task_check} and
 * ${copy_max} (a power of two at least the largest record's size less 8). Needs prelude.h and a
 * ring before it; helpers bpf_get_attach_cookie (a perf-event bpf_link with a cookie: Linux
 * 5.15) and bpf_probe_read_kernel (5.5).
 * Verifier: a tracepoint program; the copy's size is masked with copy_max - 1.
 * Use:      attach with BPF_LINK_CREATE, cookie = index | event_id << 16 | record_size << 32
 *           (kernel/perf_abi.attach_bpf); BCC's attach_tracepoint() sets no cookie.
 */
/* selectors ${first}..${last}: ${count} tracepoints of ${comment} */
/*
 * One function for every tracepoint a wildcard selector named (one per tracepoint would cost
 * ~12 ms of compile each). The attach cookie says which fired: bits 0-15 the selector index,
 * 16-31 the event id, 32-63 the record's size. Records differ in size, so the copy is a
 * helper call: a direct load past one tracepoint's record is refused when attaching there.
 */
int ${fn}(void *ctx)
{
	struct ep_cpu_state *st;
	struct ep_sample *s;
	u32 zero = 0, raw_size, copy;
	u64 cookie;

	if (!ep_gate_open())
		return EP_DONE;
${task_check}
	st = ep_cpu_state.lookup(&zero);
	if (!st)
		return EP_DONE;
	s = ep_reserve(sizeof(*s) + 8 + ${copy_max});
	if (!s) {
		st->lost++;
		return EP_DONE;
	}
	cookie = bpf_get_attach_cookie(ctx);
	raw_size = cookie >> 32;
	if (raw_size < 8)
		raw_size = 8;
	/* a mask the verifier can see: ${copy_max} is a power of two at least the largest size */
	copy = (raw_size - 8) & (${copy_max} - 1);
	ep_fill_header(s, st, cookie & 0xffff, 0, copy + 8);
	bpf_probe_read_kernel((u8 *)(s + 1) + 8, copy, ctx + 8);
	ep_fill_common(s + 1, (cookie >> 16) & 0xffff, s->tid);
	ep_submit(ctx, s, sizeof(*s) + 8 + copy, st);    /* a perf ring takes what was written */
	return EP_DONE;
}
