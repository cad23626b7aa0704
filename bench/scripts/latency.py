"""When the first event arrives, and how long events wait between happening and their handler."""
import json
import time

n = 0
first_real = None
worst = 0
samples = []


def syscalls__sys_enter_getppid(event):
    global n, first_real, worst
    n += 1
    if first_real is None:
        first_real = time.time()
    delay = time.clock_gettime_ns(time.CLOCK_MONOTONIC) - event._time
    if delay > worst:
        worst = delay
    if n % 64 == 0:
        samples.append(delay)


def __exit__():
    samples.sort()
    p99 = samples[int(len(samples) * 0.99)] if samples else worst
    print("BENCH " + json.dumps({"events": n, "first_real": first_real, "worst_ns": worst, "p99_ns": p99}))
