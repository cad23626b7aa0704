/**
 * bpf/sample_filter.c: a BPF_PROG_TYPE_PERF_EVENT program that runs a filter over a small
 * record of a perf sample's fields (pid tid cpu ip addr period comm) and counts what it saw
 * and kept in ep_filter_counts (seen at [0], kept at [1], per CPU).
 *
 * A template (drop this block, then string.Template): codegen/sample_filter.py fills
 * ${comment}, ${fn}, ${filter_fn} (int f(void *raw), pasted before it), ${words} (the record's
 * size in u64s), the record offsets ${pid} ${tid} ${cpu} ${ip} ${addr} ${period} ${comm}
 * (SAMPLE_FIELDS), and the context's offsets in struct bpf_perf_event_data from BTF: ${regs_ip}
 * (with ${ip_reg}, its name), ${ctx_addr}, ${ctx_period}; ${python_stack}: "" or a call of
 * python_sample.h's ep_py_sample (pasted before, with what it needs). Without it, it needs nothing else
 * (no prelude, no ring). Helpers: bpf_get_current_pid_tgid, bpf_get_smp_processor_id,
 * bpf_get_current_comm.
 * Verifier: the context is struct bpf_perf_event_data: 8-byte loads at those offsets only;
 *           record offsets below words * 8.
 * Use:      attach with PERF_EVENT_IOC_SET_BPF (or b.attach_perf_event(...)); returning 0
 *           drops the sample before it is written to the event's ring.
 */
/*
 * The in-kernel filter of ${comment}: a BPF_PROG_TYPE_PERF_EVENT program, run by the kernel
 * on each of the selector's samples before it is written (PERF_EVENT_IOC_SET_BPF). It returns
 * 0 to drop the sample: it never reaches the ring, so it costs the reader nothing.
 *
 * The filter reads a small record of the sample's fields, laid out as its format says
 * (codegen/sample_filter.py), the way tracepoint filters read theirs.
 */
#define EP_CTX_U64(ctx, offset) (*(u64 *)((void *)(ctx) + (offset)))

/* Samples the filter saw [0] and kept [1], per CPU: -v says them at the end. */
BPF_PERCPU_ARRAY(ep_filter_counts, u64, 2);

int ${fn}(void *ctx)	/* struct bpf_perf_event_data */
{
	u64 rec[${words}] = {};
	u8 *raw = (u8 *)rec;
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 seen = 0, kept = 1;
	u64 *count;
	int keep;

	*(u32 *)(raw + ${pid}) = pid_tgid >> 32;
	*(u32 *)(raw + ${tid}) = (u32)pid_tgid;
	*(u32 *)(raw + ${cpu}) = bpf_get_smp_processor_id();
	*(u64 *)(raw + ${ip}) = EP_CTX_U64(ctx, ${regs_ip});		/* regs.${ip_reg} */
	*(u64 *)(raw + ${addr}) = EP_CTX_U64(ctx, ${ctx_addr});		/* addr */
	*(u64 *)(raw + ${period}) = EP_CTX_U64(ctx, ${ctx_period});	/* sample_period */
	bpf_get_current_comm(raw + ${comm}, 16);
	keep = ${filter_fn}(raw) ? 1 : 0;${python_stack}
	count = ep_filter_counts.lookup(&seen);
	if (count)
		(*count)++;
	if (keep) {
		count = ep_filter_counts.lookup(&kept);
		if (count)
			(*count)++;
	}
	return keep;
}
