"""`python -m ebpfprof` is the `ebpfprof` command."""
from .cli import entry

entry()
