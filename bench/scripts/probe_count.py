"""Counting handler on uprobe:...:f events of bench/caller (run with -i: see paired.py)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paired import Pairing, prebuilt_uprobe  # noqa: E402

n = 0


def uprobe__f(event):
    global n
    n += 1


pairing = Pairing(uprobe__f, lambda: n, prebuilt_uprobe)
__interval__ = pairing.interval


def __exit__():
    pairing.report()
