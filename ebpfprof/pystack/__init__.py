"""The Python stack of a traced CPython process (3.11-3.13): find the interpreter in a process,
the struct offsets the BPF stack walk reads, and turn the (code object, instruction) pairs it
records into (qualname, file, line) frames.
"""
