"""A handler that reads 4 fields of every event."""
import json

n = 0
total = 0


def syscalls__sys_enter_getppid(event):
    global n, total
    n += 1
    total += event._pid + event._time + event.common_pid + event.__syscall_nr


def __exit__():
    with open("/proc/self/schedstat") as f:
        cpu_ns = int(f.read().split()[0])
    print("BENCH " + json.dumps({"events": n, "cpu_ns": cpu_ns}))
