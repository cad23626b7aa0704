/*
 * busy: burn CPU for a given wall time, in a known function, in user space or in the kernel.
 *
 *   busy [-w] -s SECONDS [-k]
 *
 * With -w it prints "ready PID BUSY_LOOP SYSCALL_LOOP" (the runtime addresses, in hex, of the
 * two functions below: the binary may be PIE) and waits for a line on stdin. Then, for SECONDS
 * (a decimal number) of CLOCK_MONOTONIC time:
 *
 *   default  busy_loop(): pure user-space arithmetic on a volatile, clock_gettime() (vDSO, no
 *            system call) read once every 4096 iterations
 *   -k       syscall_loop(): getppid() system calls, the clock read once every 256 of them; on
 *            x86_64 the syscall instruction is inline in syscall_loop, so a sample taken in the
 *            kernel has its user IP in syscall_loop itself (a libc wrapper has no frame pointer,
 *            and frame-pointer unwinding would skip syscall_loop)
 *
 * and prints "done ITERATIONS" (loop iterations; with -k, system calls made). With -w it waits
 * for another line before exiting. Both functions are noinline and this file is built -O0.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

static void wait_line(void)
{
	char buf[64];
	if (!fgets(buf, sizeof(buf), stdin))
		return;
}

volatile unsigned long busy_sink;

__attribute__((noinline)) long busy_loop(double seconds)
{
	double end = now() + seconds;
	long n = 0;
	unsigned long x = 88172645463325252UL;
	for (;;) {
		for (int i = 0; i < 4096; i++) {
			x ^= x << 13;                 /* xorshift64: cheap, not foldable */
			x ^= x >> 7;
			x ^= x << 17;
			busy_sink = x;
		}
		n += 4096;
		if (now() >= end)
			return n;
	}
}

__attribute__((noinline)) static long raw_getppid(void);

__attribute__((noinline)) long syscall_loop(double seconds)
{
	double end = now() + seconds;
	long n = 0;
	for (;;) {
		for (int i = 0; i < 256; i++) {
#if defined(__x86_64__)
			long ret;
			__asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_getppid)
					 : "rcx", "r11", "memory");
			busy_sink = ret;
#else
			busy_sink = raw_getppid();
#endif
		}
		n += 256;
		if (now() >= end)
			return n;
	}
}

__attribute__((noinline, unused)) static long raw_getppid(void)
{
	return getppid();
}

int main(int argc, char **argv)
{
	int wait = 0, kernel = 0, opt;
	double seconds = -1;
	while ((opt = getopt(argc, argv, "ws:k")) != -1) {
		switch (opt) {
		case 'w': wait = 1; break;
		case 's': seconds = atof(optarg); break;
		case 'k': kernel = 1; break;
		default: goto usage;
		}
	}
	if (optind != argc || seconds < 0) {
usage:
		fprintf(stderr, "usage: busy [-w] -s SECONDS [-k]\n");
		return 2;
	}
	if (wait) {
		printf("ready %d 0x%lx 0x%lx\n", getpid(), (unsigned long)busy_loop,
		       (unsigned long)syscall_loop);
		fflush(stdout);
		wait_line();
	}
	long n = kernel ? syscall_loop(seconds) : busy_loop(seconds);
	printf("done %ld\n", n);
	fflush(stdout);
	if (wait)
		wait_line();
	return 0;
}
