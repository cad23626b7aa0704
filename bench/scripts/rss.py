"""RSS at 1 M and at the last million events; every 100,000th event is kept and checked at exit."""
import json
import os

n = 0
rss_at = {}
kept = []
PAGE = os.sysconf("SC_PAGE_SIZE")


def _rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def syscalls__sys_enter_getppid(event):
    global n
    n += 1
    if n % 1_000_000 == 0:
        rss_at[n] = _rss()
    if n % 100_000 == 0:
        kept.append((event, event._time, event._pid, event.__syscall_nr))


def __exit__():
    valid = all(e._time == t and e._pid == p and e.__syscall_nr == nr for e, t, p, nr in kept)
    print("BENCH " + json.dumps({"events": n, "rss": rss_at, "kept": len(kept), "kept_valid": valid}))
