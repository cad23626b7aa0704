"""ebpfprof: process live kernel events with your own Python script.

    ebpfprof python -e sched:sched_wakeup -i 1000 analyzer.py

or from your own program (``ebpfprof.api``)::

    with ebpfprof.trace("sched:sched_wakeup/prio<120/", cpus="0-1") as events:
        for event in events.take(1000, timeout=5):
            ...

The public names are re-exported here; everything else is an implementation detail.
Importing this package does not import BCC (that happens only when a run loads programs), nor
the API's modules until one of its names is used.
"""
from ebpfprof._ring import PerfEvent
from ebpfprof.errors import EbpfprofError

__version__ = "0.1.0"
__all__ = ["PerfEvent", "EbpfprofError", "trace", "collect", "Trace", "__version__"]

_API = ("trace", "collect", "Trace")


def __getattr__(name: str):
    if name in _API:                 # on first use: `import ebpfprof` stays light
        from ebpfprof import api

        return getattr(api, name)
    raise AttributeError(f"module 'ebpfprof' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_API))
