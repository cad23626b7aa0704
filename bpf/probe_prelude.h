/*
 * What probe functions return: 0. Their perf events are ebpfprof's own (opened through the
 * uprobe/kprobe PMU, seen by nobody else): 1 would only make the kernel format a perf sample
 * for an event that has no ring.
 */
#define EP_PROBE_DONE 0

/* A u64 member of struct pt_regs, at a byte offset read from this kernel's BTF. */
#define EP_REG(ctx, offset) (*(u64 *)((void *)(ctx) + (offset)))
