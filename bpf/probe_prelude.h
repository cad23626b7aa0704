/**
 * bpf/probe_prelude.h: EP_PROBE_DONE (what probe functions return) and EP_REG(ctx, offset),
 * a u64 member of struct pt_regs read at a byte offset.
 *
 * Needs:    offsets from this kernel's BTF (ebpfprof/kernel/btf.py struct_offsets("pt_regs")),
 *           never from headers. Macros only: no map, no helper.
 * Verifier: ctx is a kprobe-type program's struct pt_regs *; offset a constant, 8-aligned,
 *           inside struct pt_regs.
 * Use:      #include "probe_prelude.h" works.
 *   u64 first_arg = EP_REG(ctx, 112);
 */
/*
 * What probe functions return: 0. Their perf events are ebpfprof's own (opened through the
 * uprobe/kprobe PMU, seen by nobody else): 1 would only make the kernel format a perf sample
 * for an event that has no ring.
 */
#define EP_PROBE_DONE 0

/* A u64 member of struct pt_regs, at a byte offset read from this kernel's BTF. */
#define EP_REG(ctx, offset) (*(u64 *)((void *)(ctx) + (offset)))
