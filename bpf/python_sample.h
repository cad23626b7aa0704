/**
 * bpf/python_sample.h: a profiler sample's Python stack, written to a ring of its own
 * (ep_py_ring) by the sample's BPF_PROG_TYPE_PERF_EVENT program: the perf sample itself goes
 * to the perf event's ring, which a BPF program cannot add to, so user space pairs the two by
 * CPU, thread, instruction pointer and time (ebpfprof/symbols/python.py).
 *
 * Needs:    ep_sample.h, prelude.h, scratch.h (with EP_MAX_STACK defined) and python_stack.h before it;
 *           EP_PY_RING_PAGES defined. Maps: BPF_RINGBUF_OUTPUT ep_py_ring, BPF_PERCPU_ARRAY
 *           ep_py_lost[1] (records the ring had no room for). Helpers: those of python_stack.h,
 *           bpf_ringbuf_output (5.8), bpf_ktime_get_ns (CLOCK_MONOTONIC: the clock our perf
 *           events are opened with: a record's time is a few microseconds after the time
 *           perf gave its sample).
 * Verifier: a perf_event program; the record is masked to EP_SCRATCH_SIZE - 1 bytes.
 * Use:      paste its text (it calls map methods); in the program, once the sample is kept:
 *   ep_py_sample(EP_CTX_U64(ctx, REGS_IP_OFFSET));
 *
 * A record: struct ep_sample (time, pid, tid, cpu; nr_frames = Python words), the sample's
 * instruction pointer (raw_size 8), then python_stack.h's words; nothing for a thread that is
 * not in a known CPython process.
 */
BPF_RINGBUF_OUTPUT(ep_py_ring, EP_PY_RING_PAGES);
BPF_PERCPU_ARRAY(ep_py_lost, u64, 1);

static __always_inline void ep_py_sample(u64 ip)
{
	u32 zero = 0, nr, total;
	u64 pid_tgid = bpf_get_current_pid_tgid();
	struct ep_scratch *sc = ep_scratch.lookup(&zero);
	u64 *lost;

	if (!sc)
		return;
	nr = ep_python_stack(sc, 8, 0);
	if (!nr)
		return;
	sc->s.time = bpf_ktime_get_ns();
	sc->s.pid = pid_tgid >> 32;
	sc->s.tid = (u32)pid_tgid;
	sc->s.cpu = bpf_get_smp_processor_id();
	sc->s.selector = 0;
	sc->s.nr_frames = nr;
	sc->s.lost = 0;
	sc->s.raw_size = 8;
	*(u64 *)sc->raw = ip;
	total = (sizeof(sc->s) + 8 + nr * sizeof(u64)) & (EP_SCRATCH_SIZE - 1);
	if (ep_py_ring.ringbuf_output(&sc->s, total, 0) != 0) {
		lost = ep_py_lost.lookup(&zero);
		if (lost)
			(*lost)++;
	}
}
