"""A handler that turns every event into a dict."""
import json

n = 0


def syscalls__sys_enter_getppid(event):
    global n
    n += 1
    event.to_dict()


def __exit__():
    with open("/proc/self/schedstat") as f:
        cpu_ns = int(f.read().split()[0])
    print("BENCH " + json.dumps({"events": n, "cpu_ns": cpu_ns}))
