/*
 * bench/faulter: page faults as fast as one thread makes them, for bench/profilers.py.
 *   faulter ROUNDS PAGES   prints "ready PID", waits for a line on stdin, then ROUNDS times maps
 *                          PAGES fresh anonymous pages, writes one byte to each (one fault each)
 *                          and unmaps them; prints "done FAULTS SECONDS RATE", waits for a line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    long rounds = atol(argv[1]), pages = atol(argv[2]), psz = sysconf(_SC_PAGESIZE);
    char line[16];
    printf("ready %d\n", getpid());
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
        return 1;
    double t0 = now();
    for (long r = 0; r < rounds; r++) {
        char *p = mmap(NULL, pages * psz, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED)
            return 1;
        madvise(p, pages * psz, MADV_NOHUGEPAGE);
        for (long i = 0; i < pages; i++)
            p[i * psz] = 1;
        munmap(p, pages * psz);
    }
    double secs = now() - t0;
    printf("done %ld %.3f %.0f\n", rounds * pages, secs, rounds * pages / secs);
    fflush(stdout);
    fgets(line, sizeof(line), stdin);
    return 0;
}
