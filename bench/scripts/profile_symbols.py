"""profile -g: every sample's callchain symbolized (frames read), plus a plain count."""
import json

n = 0
frames = 0


def profile(event):
    global n, frames
    n += 1
    frames += len(event.callchain)


def __exit__():
    with open("/proc/self/schedstat") as f:
        cpu_ns = int(f.read().split()[0])
    print("BENCH " + json.dumps({"events": n, "frames": frames, "cpu_ns": cpu_ns}), flush=True)
