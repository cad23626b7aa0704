/**
 * bpf/dynamic_size.c: a statement block that grows u32 size to the end of one __data_loc or
 * __rel_loc payload of the record at ctx.
 *
 * A template (drop this block, then string.Template), pasted inside a function where void *ctx
 * and u32 size exist (tracepoint_scratch.c's dynamic_size place): codegen/program.py
 * (_dynamic_size) fills ${field} and ${kind} (for the comment), ${offset} (the locator's offset
 * in the format), ${base} ("" for __data_loc; "N + " for __rel_loc, N = offset + 4: its payload
 * is relative to the end of the locator) and ${rel_note}. No map, no helper.
 * Verifier: ctx is a tracepoint program's context; offset is a constant inside the record.
 * Use:      substitute(field="filename", kind="__data_loc", rel_note="", offset=8, base="")
 *           for sched:sched_process_exec, then ep_copy_raw(sc, ctx, size, id) (scratch.h).
 */
	/* ${field}: ${kind} payload ends at (loc & 0xffff) + (loc >> 16)${rel_note} */
	{
		u32 loc = *(u32 *)(ctx + ${offset});
		u32 end = ${base}(loc & 0xffff) + (loc >> 16);

		if (end > size)
			size = end;
	}
