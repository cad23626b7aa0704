"""Print, as JSON lines, every code object of some stdlib modules of *this* interpreter: its
co_linetable (hex), co_firstlineno, co_qualname, and co_positions() / co_lines() to check a
location-table decoder against (tests/unit/test_pystack_linetable.py)."""
import importlib
import json
import sys
import types

MODULES = sys.argv[1:] or ["json.decoder", "dis", "argparse", "typing", "asyncio.base_events", "inspect"]


def codes(code):
    yield code
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            yield from codes(const)


for name in MODULES:
    module = importlib.import_module(name)
    with open(module.__file__) as f:
        top = compile(f.read(), module.__file__, "exec")
    for code in codes(top):
        print(json.dumps({
            "module": name, "qualname": code.co_qualname, "firstlineno": code.co_firstlineno,
            "linetable": code.co_linetable.hex(), "units": len(code.co_code) // 2,
            "positions": list(code.co_positions()), "lines": list(code.co_lines()),
        }))
