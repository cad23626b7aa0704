/*
 * bpwrite: exact numbers of reads and writes of a known global, for hardware breakpoints.
 *
 *   bpwrite [-w] -n W
 *
 * bp_target (volatile long, 8 bytes) and bp_other (volatile int, 4 bytes) are exported globals,
 * each aligned to 64 bytes so they never share a cache line (or any breakpoint length's range).
 * Nothing touches either of them outside the loop below. With -w it prints
 *
 *   ready PID ADDR OTHER
 *
 * (the runtime addresses of bp_target and bp_other in hex: the binary may be PIE) and waits for a
 * line on stdin. Then W times: one write of bp_target, one read of bp_target, one write of
 * bp_other, in that order; so a write breakpoint on bp_target fires W times, a read/write one 2W
 * times, one on bp_other W times. It prints "done W" and, with -w, waits for another line.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

volatile long bp_target __attribute__((aligned(64)));
volatile int bp_other __attribute__((aligned(64)));
volatile long bp_sink __attribute__((aligned(64)));   /* where the reads of bp_target go */

static void wait_line(void)
{
	char buf[64];
	if (!fgets(buf, sizeof(buf), stdin))
		return;
}

__attribute__((noinline)) void bp_loop(long n)
{
	for (long i = 0; i < n; i++) {
		bp_target = i;           /* write */
		bp_sink = bp_target;     /* read */
		bp_other = (int)i;       /* write, elsewhere */
	}
}

int main(int argc, char **argv)
{
	int wait = 0, opt;
	long n = -1;
	while ((opt = getopt(argc, argv, "wn:")) != -1) {
		switch (opt) {
		case 'w': wait = 1; break;
		case 'n': n = atol(optarg); break;
		default: goto usage;
		}
	}
	if (optind != argc || n < 0) {
usage:
		fprintf(stderr, "usage: bpwrite [-w] -n W\n");
		return 2;
	}
	if (wait) {
		printf("ready %d 0x%lx 0x%lx\n", getpid(), (unsigned long)&bp_target,
		       (unsigned long)&bp_other);
		fflush(stdout);
		wait_line();
	}
	bp_loop(n);
	printf("done %ld\n", n);
	fflush(stdout);
	if (wait)
		wait_line();
	return 0;
}
