/*
 * workload: make exactly the system calls a test asks for, then wait to be told to go.
 *
 *   workload getppid N        N getppid() calls
 *   workload kill N SIG       N kill(getpid(), SIG) calls (SIG 0 checks only: nothing is sent)
 *   workload openat N PATH    N openat(AT_FDCWD, PATH, O_RDONLY) calls (closed again)
 *   workload spin MS          burn CPU for MS milliseconds, calling getppid() in the loop
 *   workload rate N RATE      N getppid() calls paced at RATE calls per second
 *
 * With -w (first argument) it prints "ready <pid>" and waits for a line on stdin before the
 * calls, and for another line before exiting, so the tracer can attach first and read
 * /proc/<pid>/comm while it still exists.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/*
 * kill(2) through our own syscall instruction, so that a user callchain starts in this
 * binary (libc's syscall() has no frame pointer, and frame-pointer unwinding would stop there).
 */
__attribute__((noinline)) static long raw_kill(long pid, long sig)
{
#if defined(__x86_64__)
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "0"((long)SYS_kill), "D"(pid), "S"(sig)
			 : "rcx", "r11", "memory");
	return ret;
#else
	return syscall(SYS_kill, pid, sig);
#endif
}

static void wait_line(void)
{
	char buf[64];
	if (!fgets(buf, sizeof(buf), stdin))
		return;
}

static double now(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
	int wait = 0;
	if (argc > 1 && strcmp(argv[1], "-w") == 0) {
		wait = 1;
		argv++;
		argc--;
	}
	if (argc < 3) {
		fprintf(stderr, "usage: workload [-w] getppid|kill|openat|spin N [ARG]\n");
		return 2;
	}
	long n = atol(argv[2]);
	if (wait) {
		printf("ready %d\n", getpid());
		fflush(stdout);
		wait_line();
	}
	double t0 = now();
	if (strcmp(argv[1], "getppid") == 0) {
		for (long i = 0; i < n; i++)
			syscall(SYS_getppid);
	} else if (strcmp(argv[1], "kill") == 0 && argc > 3) {
		int sig = atoi(argv[3]);
		for (long i = 0; i < n; i++)
			raw_kill(getpid(), sig);
	} else if (strcmp(argv[1], "openat") == 0 && argc > 3) {
		for (long i = 0; i < n; i++) {
			int fd = syscall(SYS_openat, AT_FDCWD, argv[3], O_RDONLY);
			if (fd >= 0)
				close(fd);
		}
	} else if (strcmp(argv[1], "rate") == 0 && argc > 3) {
		/* Paced in 1 ms steps: each step makes the calls due by then, then spins till the next. */
		double rate = atof(argv[3]);
		long done = 0;
		while (done < n) {
			long due = (long)((now() - t0) * rate) + 1;
			if (due > n)
				due = n;
			while (done < due) {
				syscall(SYS_getppid);
				done++;
			}
			double next = t0 + (done + rate / 1000) / rate;
			while (now() < next && done < n)
				;
		}
	} else if (strcmp(argv[1], "spin") == 0) {
		while ((now() - t0) * 1000 < n)
			syscall(SYS_getppid);
	} else {
		fprintf(stderr, "workload: unknown command %s\n", argv[1]);
		return 2;
	}
	double t = now() - t0;
	printf("done %ld %.6f %.0f\n", n, t, t > 0 ? n / t : 0.0);
	fflush(stdout);
	if (wait)
		wait_line();
	return 0;
}
