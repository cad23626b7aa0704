/**
 * bpf/python_stack.h: the Python stack of the current thread of a CPython 3.11-3.13 process,
 * read at the event: (code object, instruction pointer) pairs appended to a record's frames
 * after an EP_CONTEXT_PYTHON marker. Names, files and lines are found in user space
 * (ebpfprof/pystack/), from the code objects, while the process still has them.
 *
 * Needs:    scratch.h before it (struct ep_scratch, EP_FRAMES_MAX); EP_TASK_FSBASE_OFF (the
 *           offset of task_struct.thread.fsbase, from the kernel's BTF: never from headers)
 *           and EP_PY_MAX_FRAMES (at most 62) defined. Map: BPF_HASH ep_py_procs, tgid ->
 *           struct ep_py_proc, filled by user space from ebpfprof.pystack.bpf_params().
 *           Helpers: bpf_probe_read_user (5.5), bpf_probe_read_kernel, bpf_get_current_task,
 *           bpf_get_ns_current_pid_tgid (5.7, only for processes in another pid namespace).
 *           Bounded loops (5.3).
 * Verifier: ep_python_stack(sc, raw_padded, at) writes at most 126 u64 from frame index `at`
 *           (at most 256: a full kernel and user callchain) after the raw part (its size
 *           masked to 0..EP_RAW_MAX - 1): scratch.h's area has room for that, and the record's
 *           total stays below EP_SCRATCH_SIZE.
 * Use:      paste its text (it calls map methods, which BCC rewrites only in the text it is
 *           given), after scratch.h; after ep_copy_stack:
 *   nr_frames = ep_copy_stack(sc, ctx, raw_padded, 1, 1, EP_MAX_STACK);
 *   nr_frames = ep_python_stack(sc, raw_padded, nr_frames);
 *
 * What is written after the callchain, when the process is a known CPython and the thread
 * has a Python thread state (else nothing):
 *   EP_CONTEXT_PYTHON, then two words per frame, innermost first: the code object's address
 *   and the instruction pointer (2-byte aligned: bit 0 set on the outermost frame of a C call
 *   of the interpreter, 3.11's is_entry), or EP_PY_ENTRY twice for 3.12+'s shim frame of such
 *   a call. So user space can put each run of Python frames where its C frame
 *   (_PyEval_EvalFrameDefault) is. EP_PY_TRUNCATED last if the stack had more than
 *   EP_PY_MAX_FRAMES frames.
 */
#define EP_CONTEXT_PYTHON ((u64)-3072)  /* below PERF_CONTEXT_MAX: read as a marker */
#define EP_PY_ENTRY       ((u64)-3073)  /* the frames after it run in an outer C call */
#define EP_PY_TRUNCATED   ((u64)-3074)  /* more frames than EP_PY_MAX_FRAMES */

#define EP_PY_FRAME_READ  72            /* bytes of a _PyInterpreterFrame read at once (owner: 70) */
#define EP_PY_THREADS_MAX 32            /* threads looked at when the TLS rule cannot be used */

/* ebpfprof/pystack/params.py says what each value is; -1: not in this version. */
struct ep_py_proc {
	u64 tss_key_addr;
	s64 tls_specific_off;
	s64 tls_entry_size;
	s64 tls_data_off;
	s64 tls_max_key;          /* 0: the TLS rule cannot be used: walk the thread list */
	u64 interpreters_head_addr;
	s64 interp_threads_head_off;
	s64 tstate_next_off;
	s64 tstate_native_tid_off;
	s64 tstate_frame_off;
	s64 cframe_frame_off;
	s64 frame_code_off;
	s64 frame_instr_off;
	s64 frame_previous_off;
	s64 frame_owner_off;
	s64 frame_owner_skip;     /* the owner of C-stack shim frames (3.12+): an entry */
	s64 frame_is_entry_off;   /* 3.11: is_entry */
	u64 pidns_dev;
	u64 pidns_ino;
};
BPF_HASH(ep_py_procs, u32, struct ep_py_proc, 1024);

/* One frame's bytes, read at once (each bpf_probe_read_user costs ~80 ns, whatever its size). */
struct ep_py_buf {
	u8 frame[128 + 8];        /* any offset & 0x7f, plus a word, stays inside */
};
BPF_PERCPU_ARRAY(ep_py_buf, struct ep_py_buf, 1);

static __always_inline u64 ep_py_word(struct ep_py_buf *b, s64 off)
{
	return *(u64 *)(b->frame + (off & 0x7f));     /* the word offsets read are <= 56 */
}

static __always_inline u64 ep_py_user_word(u64 addr)
{
	u64 v = 0;

	bpf_probe_read_user(&v, sizeof(v), (void *)addr);
	return v;
}

/* The PyThreadState * of the current thread: glibc's TLS slot of CPython's key, else the
 * interpreter's thread list (the thread whose native_thread_id is ours). 0 if none. */
static __always_inline u64 ep_py_tstate(struct ep_py_proc *p)
{
	u64 tstate = 0, fsbase = 0, t;
	u32 key = 0, tid;
	int i;

	if (p->tls_max_key > 0) {
		bpf_probe_read_user(&key, sizeof(key), (void *)p->tss_key_addr);
		if (key < p->tls_max_key) {
			struct task_struct *task = (struct task_struct *)bpf_get_current_task();

			bpf_probe_read_kernel(&fsbase, sizeof(fsbase), (void *)task + EP_TASK_FSBASE_OFF);
			if (fsbase)
				tstate = ep_py_user_word(fsbase + p->tls_specific_off +
							 key * p->tls_entry_size + p->tls_data_off);
		}
		if (tstate)
			return tstate;
	}
	tid = (u32)bpf_get_current_pid_tgid();
	if (p->pidns_dev) {
		struct bpf_pidns_info ns = {};

		if (bpf_get_ns_current_pid_tgid(p->pidns_dev, p->pidns_ino, &ns, sizeof(ns)) == 0)
			tid = ns.pid;
	}
	t = ep_py_user_word(ep_py_user_word(p->interpreters_head_addr) + p->interp_threads_head_off);
	for (i = 0; i < EP_PY_THREADS_MAX && t; i++) {
		if ((u32)ep_py_user_word(t + p->tstate_native_tid_off) == tid)
			return t;
		t = ep_py_user_word(t + p->tstate_next_off);
	}
	return 0;
}

/* Append the Python frames at frames index `at`; returns the new count. */
static __always_inline u32 ep_python_stack(struct ep_scratch *sc, u32 raw_padded, u32 at)
{
	u32 tgid = bpf_get_current_pid_tgid() >> 32, zero = 0, n = 0, i;
	struct ep_py_proc *p = ep_py_procs.lookup(&tgid);
	struct ep_py_buf *b;
	u64 *out, frame, code, instr;

	at &= 0x1ff;
	if (!p || at > 2 * (EP_MAX_STACK + 1))
		return at;
	b = ep_py_buf.lookup(&zero);
	if (!b)
		return at;
	frame = ep_py_tstate(p);
	if (!frame)
		return at;
	frame = ep_py_user_word(frame + p->tstate_frame_off);
	if (frame && p->cframe_frame_off >= 0)
		frame = ep_py_user_word(frame + p->cframe_frame_off);
	if (!frame)
		return at;
	out = (u64 *)(sc->raw + (raw_padded & (EP_RAW_MAX - 1))) + at;
	out[0] = EP_CONTEXT_PYTHON;
	out++;
	/* Two words a frame whatever it is: the verifier then sees one state per iteration. */
	for (i = 0; i < EP_PY_MAX_FRAMES && frame; i++) {
		if (bpf_probe_read_user(b->frame, EP_PY_FRAME_READ, (void *)frame) != 0)
			break;
		code = ep_py_word(b, p->frame_code_off);
		instr = ep_py_word(b, p->frame_instr_off);
		if (p->frame_owner_skip >= 0 && b->frame[p->frame_owner_off & 0x7f] == p->frame_owner_skip)
			code = instr = EP_PY_ENTRY;   /* a shim frame of a C call into the interpreter */
		else if (p->frame_is_entry_off >= 0 && b->frame[p->frame_is_entry_off & 0x7f])
			instr |= 1;                   /* the outermost frame of its C call (3.11) */
		out[(2 * i) & 0x7f] = code;
		out[(2 * i + 1) & 0x7f] = instr;
		frame = ep_py_word(b, p->frame_previous_off);
	}
	n = 2 * i;
	if (frame && i == EP_PY_MAX_FRAMES) {     /* frames are left that there is no room for */
		out[n & 0x7f] = EP_PY_TRUNCATED;
		n++;
	}
	return at + 1 + (n & 0x7f);
}
