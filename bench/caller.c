/*
 * bench/caller: an empty function called as fast as one thread can, for bench/probes.py.
 *   caller SECONDS   prints "ready PID", waits for a line on stdin, then calls f() for SECONDS
 *                    (the clock is read once every 1024 calls); prints "done CALLS SECONDS RATE"
 *                    and waits for another line (so a tracer can attach before the calls and
 *                    read everything after them).
 * f is exported, never inlined or cloned, and its body is an asm barrier, so the compiler can
 * neither drop the calls nor fold them: CALLS is exactly how many times f ran.
 */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline, noclone, used)) void f(void)
{
    __asm__ __volatile__("" ::: "memory");
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 2)
        return 2;
    double seconds = atof(argv[1]);
    char line[16];
    printf("ready %d\n", getpid());
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
        return 1;
    long calls = 0;
    double t0 = now(), t = t0;
    while (t - t0 < seconds) {
        for (int i = 0; i < 1024; i++)
            f();
        calls += 1024;
        t = now();
    }
    printf("done %ld %.3f %.0f\n", calls, t - t0, calls / (t - t0));
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
        return 0;
    return 0;
}
