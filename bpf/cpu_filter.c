/* CPUs ${cpus} */
static __always_inline int ${fn}(u32 cpu)
{
	return ${expr};
}
