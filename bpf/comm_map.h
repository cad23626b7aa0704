/*
 * Task names for event.print(): tid -> comm, written where a task gets a name (exec, fork,
 * rename) and read by user space only when a script prints, so that a task gone by then still
 * prints under its name. Selector programs never touch it: a run pays for it on those three
 * rare events only, whether or not its script prints.
 */
#define EP_COMMS_MAX 32768

struct ep_comm {
	char comm[16];          /* TASK_COMM_LEN */
};
BPF_TABLE("lru_hash", u32, struct ep_comm, ep_comms, EP_COMMS_MAX);
