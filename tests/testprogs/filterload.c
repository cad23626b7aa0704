/*
 * filterload: a fixed, small mix of real events between processes of our own, for comparing
 * ebpfprof's in-kernel filters with the kernel's own ftrace filters on the same run.
 *
 *   filterload [-w] [-c CPU] LINKDIR NAME...
 *
 * Before "ready" the parent pins itself to CPU (default 0; children inherit it, so every wakeup
 * between them is a local one, made in the waker's context), ignores SIGUSR1/SIGUSR2 and forks one
 * child per NAME, each blocked on a pipe. It prints "ready PARENT CHILD..." and, with -w, waits
 * for a line on stdin. Then:
 *
 *   parent  kill(self, SIG) for SIG 0 x3, SIGUSR1 x2, SIGUSR2 x1, SIGCONT x2, SIGWINCH x1;
 *           kill(0, 0); kill(-pgrp, 0); kill(1, 0); kill(0x3fffffff, 0) (ESRCH);
 *           tgkill(self, self, SIGUSR1) (si_code SI_TKILL = -6);
 *           rt_sigqueueinfo(self, SIGUSR2, SI_QUEUE = -1)
 *   for each child i, one after the other:
 *     parent  writes a byte to child i: it wakes and execs LINKDIR/NAME (so its comm is NAME,
 *             at most 15 bytes, and sched_process_exec's filename is LINKDIR/NAME)
 *     child   writes a byte back, then ROUNDS times: reads a byte from the parent, writes one back
 *             (the parent sleeps 200 us before each byte, so each one wakes the blocked child)
 *     child   kill(self, 0) x (i + 1); kill(self, SIGUSR2) x 1; forks a grandchild that exits at
 *             once, reaps it, exits
 *     parent  reaps child i
 *
 * Then it prints "done" and, with -w, waits for another line before exiting.
 */
#define _GNU_SOURCE
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROUNDS 5
#define MAX_CHILDREN 32

static void wait_line(void)
{
	char buf[64];
	if (!fgets(buf, sizeof(buf), stdin))
		return;
}

static void xread(int fd)
{
	char c;
	if (read(fd, &c, 1) != 1) {
		perror("filterload: read");
		_exit(3);
	}
}

static void xwrite(int fd)
{
	char c = 'x';
	if (write(fd, &c, 1) != 1) {
		perror("filterload: write");
		_exit(3);
	}
}

static void sys_kill(long pid, long sig)
{
	syscall(SYS_kill, pid, sig);
}

/* After the exec: filterload child RFD WFD INDEX */
static int child_main(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	int rfd = atoi(argv[2]), wfd = atoi(argv[3]), index = atoi(argv[4]);

	xwrite(wfd);
	for (int r = 0; r < ROUNDS; r++) {
		xread(rfd);
		xwrite(wfd);
	}
	for (int k = 0; k <= index; k++)
		sys_kill(getpid(), 0);
	sys_kill(getpid(), SIGUSR2);
	pid_t g = fork();
	if (g == 0)
		_exit(0);
	if (g > 0)
		waitpid(g, NULL, 0);
	return 0;
}

static void parent_signals(void)
{
	pid_t self = getpid();
	static const struct { int sig, times; } plan[] = {
		{0, 3}, {SIGUSR1, 2}, {SIGUSR2, 1}, {SIGCONT, 2}, {SIGWINCH, 1},
	};
	for (unsigned i = 0; i < sizeof(plan) / sizeof(plan[0]); i++)
		for (int k = 0; k < plan[i].times; k++)
			sys_kill(self, plan[i].sig);
	sys_kill(0, 0);
	sys_kill(-(long)getpgrp(), 0);
	sys_kill(1, 0);
	sys_kill(0x3fffffff, 0);
	syscall(SYS_tgkill, self, self, SIGUSR1);
	siginfo_t info;
	memset(&info, 0, sizeof(info));
	info.si_signo = SIGUSR2;
	info.si_code = SI_QUEUE;
	info.si_pid = self;
	info.si_uid = getuid();
	syscall(SYS_rt_sigqueueinfo, self, SIGUSR2, &info);
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "child") == 0)
		return child_main(argc, argv);

	int wait = 0, cpu = 0;
	int a = 1;
	for (; a < argc && argv[a][0] == '-'; a++) {
		if (strcmp(argv[a], "-w") == 0)
			wait = 1;
		else if (strcmp(argv[a], "-c") == 0 && a + 1 < argc)
			cpu = atoi(argv[++a]);
		else
			break;
	}
	if (argc - a < 1 || argc - a - 1 > MAX_CHILDREN) {
		fprintf(stderr, "usage: filterload [-w] [-c CPU] LINKDIR NAME...\n");
		return 2;
	}
	const char *linkdir = argv[a];
	char **names = argv + a + 1;
	int n = argc - a - 1;

	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) != 0) {
		perror("filterload: sched_setaffinity");
		return 1;
	}
	signal(SIGUSR1, SIG_IGN);
	signal(SIGUSR2, SIG_IGN);

	int down[MAX_CHILDREN][2], up[MAX_CHILDREN][2];
	pid_t child[MAX_CHILDREN];
	for (int i = 0; i < n; i++) {
		if (pipe(down[i]) || pipe(up[i])) {
			perror("filterload: pipe");
			return 1;
		}
		child[i] = fork();
		if (child[i] < 0) {
			perror("filterload: fork");
			return 1;
		}
		if (child[i] == 0) {
			char path[4096], rfd[16], wfd[16], idx[16];
			close(down[i][1]);
			close(up[i][0]);
			xread(down[i][0]);
			snprintf(path, sizeof(path), "%s/%s", linkdir, names[i]);
			snprintf(rfd, sizeof(rfd), "%d", down[i][0]);
			snprintf(wfd, sizeof(wfd), "%d", up[i][1]);
			snprintf(idx, sizeof(idx), "%d", i);
			execl(path, names[i], "child", rfd, wfd, idx, (char *)NULL);
			perror("filterload: exec");
			_exit(127);
		}
		close(down[i][0]);
		close(up[i][1]);
	}

	printf("ready %d", getpid());
	for (int i = 0; i < n; i++)
		printf(" %d", child[i]);
	printf("\n");
	fflush(stdout);
	if (wait)
		wait_line();

	parent_signals();
	int failed = 0;
	for (int i = 0; i < n; i++) {
		xwrite(down[i][1]);
		xread(up[i][0]);
		for (int r = 0; r < ROUNDS; r++) {
			usleep(200);	/* the child blocks in read: this write wakes it */
			xwrite(down[i][1]);
			xread(up[i][0]);
		}
		int status;
		waitpid(child[i], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			failed++;
	}
	printf("done %d %d\n", n, failed);
	fflush(stdout);
	if (wait)
		wait_line();
	return failed ? 1 : 0;
}
