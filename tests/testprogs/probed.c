/*
 * probed: functions called an exact number of times with known arguments, for uprobes.
 *
 *   probed [-w] -n K [-s PATH]
 *
 * K times, for i = 0 .. K-1: probed_add(i, 2*i), which returns 3*i + 1 (as a long), and
 * probed_name(PATH) (default "/probed/path/0") with PATH's last char replaced by '0' + i % 10.
 * Both are exported, never inlined, called from probed_loop() which main() calls. With -w it
 * prints "ready PID" and waits for a line before the calls, prints "done K" and waits for
 * another line after them (so a tracer can attach before and read everything after).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile long probed_sink;

__attribute__((noinline)) long probed_add(long a, long b)
{
	probed_sink += a;
	return a + b + 1;
}

__attribute__((noinline)) size_t probed_name(const char *path)
{
	return strlen(path);
}

static void wait_line(void)
{
	char buf[64];
	if (!fgets(buf, sizeof(buf), stdin))
		return;
}

__attribute__((noinline)) void probed_loop(long n, char *path)
{
	size_t last = strlen(path) - 1;
	for (long i = 0; i < n; i++) {
		probed_sink += probed_add(i, 2 * i);
		path[last] = (char)('0' + i % 10);
		probed_sink += (long)probed_name(path);
	}
}

int main(int argc, char **argv)
{
	int wait = 0, opt;
	long n = -1;
	char path[256] = "/probed/path/0";
	while ((opt = getopt(argc, argv, "wn:s:")) != -1) {
		switch (opt) {
		case 'w': wait = 1; break;
		case 'n': n = atol(optarg); break;
		case 's': snprintf(path, sizeof(path), "%s", optarg); break;
		default: goto usage;
		}
	}
	if (optind != argc || n < 0 || !path[0]) {
usage:
		fprintf(stderr, "usage: probed [-w] -n K [-s PATH]\n");
		return 2;
	}
	if (wait) {
		printf("ready %d\n", getpid());
		fflush(stdout);
		wait_line();
	}
	probed_loop(n, path);
	printf("done %ld\n", n);
	fflush(stdout);
	if (wait)
		wait_line();
	return 0;
}
