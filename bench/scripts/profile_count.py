"""profile: a counting handler (what sampling costs the consumer when frames are not read)."""
import json

n = 0


def profile(event):
    global n
    n += 1


def __exit__():
    with open("/proc/self/schedstat") as f:
        cpu_ns = int(f.read().split()[0])
    print("BENCH " + json.dumps({"events": n, "cpu_ns": cpu_ns}), flush=True)
