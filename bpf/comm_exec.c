/**
 * bpf/comm_exec.c: ep_comm_exec(), for sched:sched_process_exec: records the current task's
 * new name in ep_comms. A complete function, not a template: nothing to fill.
 *
 * Needs:    prelude.h (ep_gate_open, EP_DONE) and comm_map.h before it; helper
 *           bpf_get_current_comm. Does nothing while the gate (ep_gate[0]) is 0.
 * Verifier: a tracepoint program (it reads nothing of ctx).
 * Use:      paste its text (a map call), then
 *   b.attach_tracepoint(tp="sched:sched_process_exec", fn_name="ep_comm_exec")
 */
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
