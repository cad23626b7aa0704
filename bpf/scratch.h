/**
 * bpf/scratch.h: a per-CPU 8 KB area (ep_scratch) for records whose size is known only at run
 * time: ep_copy_raw copies a tracepoint record into it, ep_copy_stack appends callchains.
 *
 * Needs:    EP_MAX_STACK defined before it (frames per callchain, at most 127, the kernel's
 *           perf_event_max_stack default); prelude.h before it (ep_fill_common,
 *           EP_CONTEXT_*). Helpers: bpf_probe_read_kernel (5.5), bpf_get_stack (4.18,
 *           BPF_F_USER_STACK for user frames). Map: BPF_PERCPU_ARRAY ep_scratch[1].
 * Verifier: sc is the checked result of ep_scratch.lookup(); ep_copy_raw's ctx is a tracepoint
 *           program's context; ep_copy_stack's max_frames is a constant <= EP_MAX_STACK (its
 *           frames must stay inside sc). The caller masks the total it sends with
 *           EP_SCRATCH_SIZE - 1 so that ep_output's size has a bound the verifier sees.
 * Use:      #include "scratch.h" works (it declares a map but calls none).
 *   sc = ep_scratch.lookup(&zero);
 *   if (!st || !sc)
 *           return EP_DONE;
 *   raw_padded = ep_copy_raw(sc, ctx, size, event_id);
 *   nr = ep_copy_stack(sc, ctx, raw_padded, 1, 0, EP_MAX_STACK);
 *   ep_fill_header(&sc->s, st, 0, nr, sc->s.raw_size);
 *   total = (sizeof(sc->s) + raw_padded + nr * 8) & (EP_SCRATCH_SIZE - 1);
 *   ep_output(ctx, &sc->s, total, st);
 */
/*
 * A per-CPU scratch record for events whose size is only known at run time (__data_loc
 * payloads, callchains): built here, then copied into the ring with its exact size.
 */
#define EP_RAW_MAX 4096                         /* records are at most 8 KB; we keep 4088 bytes */
#define EP_FRAMES_MAX (2 * (EP_MAX_STACK + 1))  /* kernel + user frames, one context marker each */

#define EP_SCRATCH_SIZE 8192                    /* a power of two, so sizes can be masked */

struct ep_scratch {
	struct ep_sample s;
	u8 raw[EP_RAW_MAX];
	u64 frames[EP_FRAMES_MAX];
	u8 pad[EP_SCRATCH_SIZE - sizeof(struct ep_sample) - EP_RAW_MAX - EP_FRAMES_MAX * sizeof(u64)];
};
BPF_PERCPU_ARRAY(ep_scratch, struct ep_scratch, 1);

/* Copy the raw record (at most EP_RAW_MAX - 8 bytes kept) and return its size padded to 8. */
static __always_inline u32 ep_copy_raw(struct ep_scratch *sc, void *ctx, u32 size, u16 event_id)
{
	/* Keep room for the padding: frames start at the padded size, inside raw[] or just after. */
	if (size > EP_RAW_MAX - 8)
		size = EP_RAW_MAX - 8;
	if (size < 8)
		size = 8;
	bpf_probe_read_kernel(sc->raw + 8, (size - 8) & (EP_RAW_MAX - 1), ctx + 8);
	ep_fill_common(sc->raw, event_id, (u32)bpf_get_current_pid_tgid());
	sc->s.raw_size = size;
	return (size + 7) & ~7;
}

/* Append kernel and/or user frames after a raw part of raw_padded bytes; returns the count. */
static __always_inline u32 ep_copy_stack(struct ep_scratch *sc, void *ctx, u32 raw_padded,
					 int kernel, int user, u32 max_frames)
{
	u64 *frames = (u64 *)(sc->raw + (raw_padded & (EP_RAW_MAX - 1)));
	u32 nr = 0;
	long n;

	if (kernel) {
		frames[0] = EP_CONTEXT_KERNEL;
		n = bpf_get_stack(ctx, &frames[1], max_frames * sizeof(u64), 0);
		nr = n > 0 ? 1 + n / sizeof(u64) : 0;
	}
	if (user) {
		nr &= 0xff;
		if (nr > EP_MAX_STACK + 1)
			nr = EP_MAX_STACK + 1;
		frames[nr] = EP_CONTEXT_USER;
		n = bpf_get_stack(ctx, &frames[nr + 1], max_frames * sizeof(u64), BPF_F_USER_STACK);
		nr = n > 0 ? nr + 1 + n / sizeof(u64) : nr;
	}
	return nr;
}
