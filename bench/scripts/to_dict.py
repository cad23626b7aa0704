"""A handler that turns every event into a dict (run with -i 50: see paired.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paired import Pairing  # noqa: E402

n = 0


def syscalls__sys_enter_getppid(event):
    global n
    n += 1
    event.to_dict()


pairing = Pairing(syscalls__sys_enter_getppid, lambda: n)
__interval__ = pairing.interval


def __exit__():
    pairing.report()
