/**
 * bpf/cpu_filter.c: a function of a CPU number, 1 for the CPUs a selector watches (-C, cpus=).
 *
 * A template (drop this block, then string.Template): codegen/program.py (_cpu_function) fills
 * ${fn} (its name), ${expr} (a C expression over u32 cpu: a 64-bit mask test, or comparisons
 * above CPU 63) and ${cpus} (the list, for the comment). No map, no helper; the caller passes
 * bpf_get_smp_processor_id().
 * Verifier: nothing of the caller.
 * Use:      substitute(fn="want_cpu", cpus="0", expr="cpu < 64 && ((0x1ULL >> cpu) & 1)"), then
 *   if (!want_cpu(bpf_get_smp_processor_id()))
 *           return EP_DONE;
 */
/* CPUs ${cpus} */
static __always_inline int ${fn}(u32 cpu)
{
	return ${expr};
}
