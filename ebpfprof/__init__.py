"""ebpfprof: process live kernel events with your own Python script.

    ebpfprof python -e sched:sched_wakeup -i 1000 analyzer.py

The public names are re-exported here; everything else is an implementation detail.
Importing this package does not import BCC (that happens only when a run loads programs).
"""
from ebpfprof._ring import PerfEvent
from ebpfprof.errors import EbpfprofError

__version__ = "0.1.0"
__all__ = ["PerfEvent", "EbpfprofError", "__version__"]
