/**
 * bpf/comm_fork.c: ep_comm_fork(), for sched:sched_process_fork (it runs in the parent):
 * records the child's name, its parent's, in ep_comms.
 *
 * A template (drop this block, then string.Template): codegen/program.py fills
 * ${child_pid_offset}, the byte offset of child_pid in this kernel's sched_process_fork format
 * (tracefs). Needs prelude.h and comm_map.h before it; helper bpf_get_current_comm.
 * Verifier: a tracepoint program; the offset is a constant inside the record (the kernel
 *           refuses, at attach, a program that reads past the record).
 * Use:      string.Template(text).substitute(child_pid_offset=20), paste, attach to
 *           sched:sched_process_fork as ep_comm_fork.
 */
/* sched:sched_process_fork (in the parent): a new task starts with its parent's name */
int ep_comm_fork(void *ctx)
{
	u32 child = *(u32 *)(ctx + ${child_pid_offset});
	struct ep_comm c = {};

	if (!ep_gate_open())
		return EP_DONE;
	bpf_get_current_comm(c.comm, sizeof(c.comm));
	ep_comms.update(&child, &c);
	return EP_DONE;
}
