/*
 * Which tasks and CPUs a run watches (-p, -t, -C, cpus=): checked first, before any copy.
 * EP_WANT_TGID(tgid), EP_WANT_TID(tid) and EP_WANT_CPU(cpu) are generated per run; each is
 * 1 when that restriction is not given.
 */
static __always_inline int ep_task_wanted(void)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 tgid = pid_tgid >> 32;
	u32 tid = (u32)pid_tgid;

	return EP_WANT_TGID(tgid) && EP_WANT_TID(tid);
}
