"""`python -m ebpfprof` is the `ebpfprof` command."""
from ebpfprof.cli import entry

entry()
