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
