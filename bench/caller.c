/*
 * bench/caller: an empty function called as fast as one thread can, for bench/probes.py.
 *   caller SECONDS [FUNC]   prints "ready PID", waits for a line on stdin, then calls FUNC for
 *                           SECONDS (the clock is read once every 1024 calls); prints "done CALLS
 *                           SECONDS RATE" and waits for another line (so a tracer can attach
 *                           before the calls and read everything after them).
 * FUNC (default f) is one of three empty functions, exported, never inlined, which differ in
 * their first instruction, the one a uprobe replaces, and so in what a hit costs the kernel:
 *   f        what gcc -O2 makes of an empty function: a lone `ret`. The kernel traps (int3)
 *            and single-steps the instruction out of line: two traps a call.
 *   f_push   a frame-pointer prologue (`push %rbp; mov %rsp,%rbp; pop %rbp; ret`), as most
 *            functions built with frame pointers start: the kernel emulates the push (one trap).
 *   f_nop5   a 5-byte nop first, as USDT probe sites: kernels that optimize uprobes (x86-64,
 *            Linux 6.18) turn it into a call to their [uprobes-trampoline] mapping (no trap).
 * On other architectures f_push and f_nop5 are plain C twins of f. The calls cannot be
 * dropped or folded (f's body is an asm barrier; the others are asm): CALLS is exact.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline, noclone, used)) void f(void)
{
    __asm__ __volatile__("" ::: "memory");
}

#if defined(__x86_64__)
void f_push(void);
void f_nop5(void);
__asm__(".text\n"
        ".globl f_push\n.type f_push,@function\n"
        "f_push:\n\tpush %rbp\n\tmov %rsp,%rbp\n\tpop %rbp\n\tret\n.size f_push,.-f_push\n"
        ".globl f_nop5\n.type f_nop5,@function\n"
        "f_nop5:\n\t.byte 0x0f,0x1f,0x44,0x00,0x00\n\tret\n.size f_nop5,.-f_nop5\n");
#else
__attribute__((noinline, noclone, used)) void f_push(void)
{
    __asm__ __volatile__("" ::: "memory");
}
__attribute__((noinline, noclone, used)) void f_nop5(void)
{
    __asm__ __volatile__("" ::: "memory");
}
#endif

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* A direct call in each loop (not through a pointer): the same code as a caller of f would be. */
#define CALL_LOOP(fn)                                   \
    while (t - t0 < seconds) {                          \
        for (int i = 0; i < 1024; i++)                  \
            fn();                                       \
        calls += 1024;                                  \
        t = now();                                      \
    }

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3)
        return 2;
    double seconds = atof(argv[1]);
    const char *fn = argc == 3 ? argv[2] : "f";
    if (strcmp(fn, "f") && strcmp(fn, "f_push") && strcmp(fn, "f_nop5"))
        return 2;
    char line[16];
    printf("ready %d\n", getpid());
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
        return 1;
    long calls = 0;
    double t0 = now(), t = t0;
    if (!strcmp(fn, "f_push"))
        CALL_LOOP(f_push)
    else if (!strcmp(fn, "f_nop5"))
        CALL_LOOP(f_nop5)
    else
        CALL_LOOP(f)
    printf("done %ld %.3f %.0f\n", calls, t - t0, calls / (t - t0));
    fflush(stdout);
    if (!fgets(line, sizeof(line), stdin))
        return 0;
    return 0;
}
