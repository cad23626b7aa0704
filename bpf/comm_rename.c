/* task:task_rename (prctl(PR_SET_NAME), /proc/PID/comm): only the record has the new name yet */
int ep_comm_rename(void *ctx)
{
	u32 tid = ${tid};
	struct ep_comm c = {};

	if (!ep_gate_open())
		return EP_DONE;
	bpf_probe_read_kernel_str(c.comm, sizeof(c.comm), ${newcomm});
	ep_comms.update(&tid, &c);
	return EP_DONE;
}
