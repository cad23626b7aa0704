/* sched:sched_process_exec: the task already carries the name of what it runs now */
int ep_comm_exec(void *ctx)
{
	u32 tid = (u32)bpf_get_current_pid_tgid();
	struct ep_comm c = {};

	if (!ep_gate_open())
		return EP_DONE;
	bpf_get_current_comm(c.comm, sizeof(c.comm));
	ep_comms.update(&tid, &c);
	return EP_DONE;
}
