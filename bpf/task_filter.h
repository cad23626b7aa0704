/**
 * bpf/task_filter.h: ep_task_wanted(): 1 if the current thread is one the run watches (-p, -t).
 *
 * Needs:    EP_WANT_TGID(tgid) and EP_WANT_TID(tid) defined before it: C expressions over a
 *           u32, 1 to keep ((1): no restriction). A map lookup in one must sit in a function
 *           the macro calls (BCC rewrites map calls only outside macros). Helper:
 *           bpf_get_current_pid_tgid; any program type.
 * Verifier: nothing of the caller.
 * Use:      #include "task_filter.h" works (no map calls of its own).
 *   #define EP_WANT_TGID(x) ((x) == 1234U)
 *   #define EP_WANT_TID(x) (1)
 *   #include "task_filter.h"
 *   ...
 *   if (!ep_task_wanted())
 *           return EP_DONE;
 */
/*
 * Which tasks a run watches (-p, -t): checked first, before any copy. EP_WANT_TGID(tgid) and
 * EP_WANT_TID(tid) are generated per run; each is 1 when that restriction is not given.
 * CPUs (-C, cpus=) are a function per selector (cpu_filter.c).
 */
static __always_inline int ep_task_wanted(void)
{
	u64 pid_tgid = bpf_get_current_pid_tgid();
	u32 tgid = pid_tgid >> 32;
	u32 tid = (u32)pid_tgid;

	return EP_WANT_TGID(tgid) && EP_WANT_TID(tid);
}
