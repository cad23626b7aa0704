/**
 * bpf/comm_rename.c: ep_comm_rename(), for task:task_rename (prctl(PR_SET_NAME), a write to
 * /proc/PID/comm): records the new name of the renamed task in ep_comms.
 *
 * A template (drop this block, then string.Template): codegen/program.py fills ${tid} (a u32 C
 * expression: the record's pid field, or the current thread where the format has none) and
 * ${newcomm} (a kernel pointer to the new name in the record: ctx + offset, or through its
 * __data_loc). Needs prelude.h and comm_map.h before it; helper bpf_probe_read_kernel_str
 * (5.5).
 * Verifier: a tracepoint program; offsets are constants inside the record.
 * Use:      substitute(tid="*(u32 *)(ctx + 8)", newcomm="ctx + 28") for this format, paste,
 *           attach to task:task_rename as ep_comm_rename.
 */
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
