/*
 * faults: an exact number of page faults, each one a first write to a fresh anonymous page.
 *
 *   faults [-w] -p PAGES [-t THREADS]
 *
 * Before "ready" it mmaps one anonymous private region of PAGES pages (PROT_READ|PROT_WRITE,
 * MAP_PRIVATE|MAP_ANONYMOUS, MADV_NOHUGEPAGE so no THP or mTHP folio serves several pages at
 * once) and leaves it untouched. It starts THREADS worker threads (default 1), and runs the whole
 * measured path once on a separate warm-up region (one page per thread), so that everything the
 * measured part uses has been faulted in already: code pages of the binary and of libc, lazily
 * bound PLT entries, the threads' and the main thread's stack pages (64 KiB of each stack are
 * written), the barrier, the line buffers. stdin and stdout are used through read(2)/write(2) on
 * static buffers, never stdio, so no buffer is allocated later. Then, with -w, it prints
 *
 *   ready PID START END TID1,TID2,...
 *
 * (START and END the region's [START, END) in hex, TIDi worker i's thread id) and waits for a
 * line on stdin. On that line worker i writes one byte to each page of its share of the region,
 * pages [i*PAGES/THREADS, (i+1)*PAGES/THREADS) (integer division: the shares partition the pages
 * exactly, in order), and the program prints
 *
 *   done P
 *
 * with P the number of pages touched (= PAGES). Each touch is exactly one minor fault, taken by
 * the worker that touches: the process's minflt (/proc/PID/stat field 10) grows by PAGES between
 * "ready" and "done", worker i's (/proc/PID/task/TIDi/stat) by its share, the main thread's by 0.
 * The workers stay alive, blocked, until the line after "done" (or EOF) has been read: thread
 * exit is not in the measured part. Without -w it runs at once and prints only the done line.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define MAX_THREADS 64
#define STACK_PREFAULT (64 * 1024)

static long pagesize;
static long npages;
static int nthreads = 1;

/* What the workers touch in the current round: a region and its number of pages. */
static char *volatile round_base;
static volatile long round_pages;

static pthread_barrier_t barrier;
static pid_t tids[MAX_THREADS];
static long touched[MAX_THREADS];

static char line_buf[1024];

/* Write a byte to every page of the STACK_PREFAULT bytes below the caller's frame. */
__attribute__((noinline)) static int prefault_stack(void)
{
	volatile char buf[STACK_PREFAULT];
	for (long i = STACK_PREFAULT - 1; i >= 0; i -= 512)
		buf[i] = 0;
	buf[0] = 0;
	return buf[0];
}

static void die(const char *what)
{
	fprintf(stderr, "faults: %s: %s\n", what, strerror(errno));
	exit(3);
}

/* The line into line_buf (not written out): the formatting code and stack, without the write. */
static size_t format_line(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line_buf, sizeof(line_buf), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line_buf))
		n = sizeof(line_buf) - 1;
	return n;
}

static void put_line(size_t n)
{
	size_t off = 0;
	while (off < n) {
		ssize_t w = write(1, line_buf + off, n - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			_exit(3);
		off += w;
	}
}

/* Read one line from stdin (its content is ignored), byte by byte into a static buffer. */
static void wait_line(void)
{
	static char c;
	for (;;) {
		ssize_t r = read(0, &c, 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0 || c == '\n')
			return;
	}
}

static void *worker(void *arg)
{
	long i = (long)arg;
	tids[i] = gettid();
	prefault_stack();
	pthread_barrier_wait(&barrier);               /* setup done */
	for (int round = 0; round < 2; round++) {     /* 0: warm-up region, 1: the real one */
		pthread_barrier_wait(&barrier);       /* go */
		long first = i * round_pages / nthreads, last = (i + 1) * round_pages / nthreads;
		char *base = round_base;
		long n = 0;
		for (long p = first; p < last; p++) {
			((volatile char *)base)[p * pagesize] = 1;
			n++;
		}
		touched[i] = n;
		pthread_barrier_wait(&barrier);       /* done */
	}
	pthread_barrier_wait(&barrier);               /* exit */
	return NULL;
}

/* One round on the main thread's side: release the workers, wait for them, format "done". */
static size_t run_round(char *base, long pages)
{
	round_base = base;
	round_pages = pages;
	pthread_barrier_wait(&barrier);               /* go */
	pthread_barrier_wait(&barrier);               /* done */
	long total = 0;
	for (int i = 0; i < nthreads; i++)
		total += touched[i];
	return format_line("done %ld\n", total);
}

int main(int argc, char **argv)
{
	int wait = 0, opt;
	npages = -1;
	while ((opt = getopt(argc, argv, "wp:t:")) != -1) {
		switch (opt) {
		case 'w': wait = 1; break;
		case 'p': npages = atol(optarg); break;
		case 't': nthreads = atoi(optarg); break;
		default: goto usage;
		}
	}
	if (optind != argc || npages < 1 || nthreads < 1 || nthreads > MAX_THREADS) {
usage:
		fprintf(stderr, "usage: faults [-w] -p PAGES [-t THREADS (1-%d)]\n", MAX_THREADS);
		return 2;
	}
	pagesize = sysconf(_SC_PAGESIZE);
	if (npages > (long)(((unsigned long)-1 >> 1) / pagesize)) {
		fprintf(stderr, "faults: -p %ld: too many pages\n", npages);
		return 2;
	}
	size_t len = npages * pagesize;
	char *region = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (region == MAP_FAILED)
		die("mmap");
	if (madvise(region, len, MADV_NOHUGEPAGE) != 0)
		die("madvise(MADV_NOHUGEPAGE)");
	size_t warm_len = nthreads * pagesize;
	char *warm = mmap(NULL, warm_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (warm == MAP_FAILED)
		die("mmap");
	madvise(warm, warm_len, MADV_NOHUGEPAGE);

	memset(line_buf, 0, sizeof(line_buf));
	memset(touched, 0, sizeof(touched));
	prefault_stack();
	if (pthread_barrier_init(&barrier, NULL, nthreads + 1) != 0)
		die("pthread_barrier_init");
	pthread_t threads[MAX_THREADS];
	for (long i = 0; i < nthreads; i++) {
		errno = pthread_create(&threads[i], NULL, worker, (void *)i);
		if (errno)
			die("pthread_create");
	}
	pthread_barrier_wait(&barrier);               /* setup done: tids[] are set */

	/* The warm-up round: the same calls as the measured one, on the warm-up region. */
	run_round(warm, nthreads);
	if (read(0, line_buf, 0) < 0)                 /* read(2)'s wrapper, with nothing to read */
		die("read");

	if (wait) {
		size_t n = format_line("ready %d 0x%lx 0x%lx ", getpid(), (unsigned long)region,
				       (unsigned long)region + len);
		for (int i = 0; i < nthreads; i++)
			n += snprintf(line_buf + n, sizeof(line_buf) - n, i ? ",%d" : "%d", tids[i]);
		n += snprintf(line_buf + n, sizeof(line_buf) - n, "\n");
		if (n >= sizeof(line_buf))
			n = sizeof(line_buf) - 1;
		put_line(n);
		wait_line();
	}
	put_line(run_round(region, npages));          /* the measured part */
	if (wait)
		wait_line();
	pthread_barrier_wait(&barrier);               /* exit */
	for (int i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	return 0;
}
