"""Counting handler on page-faults samples (run with -i 50: see paired.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paired import Pairing, prebuilt_page_fault  # noqa: E402

n = 0


def page_faults(event):
    global n
    n += 1


pairing = Pairing(page_faults, lambda: n, prebuilt_page_fault)
__interval__ = pairing.interval


def __exit__():
    pairing.report()
