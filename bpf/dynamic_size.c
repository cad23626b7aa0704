	/* ${field}: ${kind} payload ends at (loc & 0xffff) + (loc >> 16)${rel_note} */
	{
		u32 loc = *(u32 *)(ctx + ${offset});
		u32 end = ${base}(loc & 0xffff) + (loc >> 16);

		if (end > size)
			size = end;
	}
