/**
 * bpf/comm_map.h: ep_comms, an LRU hash tid -> struct ep_comm (the task's name, 16 bytes).
 *
 * Needs:    BPF_MAP_TYPE_LRU_HASH (4.10); nothing defined before it. Written by comm_exec.c,
 *           comm_fork.c and comm_rename.c; read by user space (b["ep_comms"]).
 * Verifier: nothing (a map).
 * Use:      #include "comm_map.h" works (a map declaration, no map calls).
 *   struct ep_comm c = {};
 *   bpf_get_current_comm(c.comm, sizeof(c.comm));
 *   ep_comms.update(&tid, &c);
 */
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
