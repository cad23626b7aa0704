"""Callchains (-g, /stack/): real kernel and user frames, resolved to symbols."""
from __future__ import annotations

from runner import Tracer, Workload, write_script

SCRIPT = '''
import json
chains = []
def syscalls__sys_enter_kill(event):
    chains.append(event._callchain)
def syscalls__sys_enter_getppid(event):
    chains.append(event._callchain)
def __exit__():
    print("CHAINS " + json.dumps(chains))
'''


def _run(tmp_path, workload_bin, args, wl_args=("kill", "3", "0")):
    import json

    wl = Workload(workload_bin, *wl_args)
    script = write_script(tmp_path, SCRIPT)
    tracer = Tracer([*args, "-p", str(wl.pid), str(script)])
    try:
        tracer.wait_attached()
        wl.go()
        import time
        time.sleep(0.3)   # user symbols are read from the live process
        wl.finish()
        assert tracer.wait() == 0, tracer.stderr
    finally:
        wl.kill()
    return json.loads(tracer.stdout.split("CHAINS ", 1)[1])


def test_call_graph_has_kernel_then_user_frames(tmp_path, workload_bin):
    chains = _run(tmp_path, workload_bin, ["-e", "syscalls:sys_enter_kill", "-g"])
    assert len(chains) == 3
    for chain in chains:
        assert set(chain[0]) == {"addr", "symbol", "offset", "kernel", "dso"}
        kernel = [f for f in chain if f["kernel"]]
        user = [f for f in chain if not f["kernel"]]
        assert kernel and user, chain
        # innermost first: every kernel frame comes before the first user frame
        assert chain.index(user[0]) == len(kernel)
        assert all(f["dso"] == "[kernel.kallsyms]" for f in kernel)
        assert all(f["addr"] >= 0xffff800000000000 for f in kernel)
        assert any("syscall" in f["symbol"] for f in kernel), [f["symbol"] for f in kernel]
        # raw_kill() makes the syscall from main() (built -O0 with frame pointers, so the
        # user stack unwinds): both show up, with the binary's path
        symbols = [f["symbol"] for f in user]
        assert symbols[0].startswith("raw_kill") and symbols[1] == "main", symbols
        main = user[symbols.index("main")]
        assert main["dso"] == str(workload_bin) and main["offset"] > 0


def test_stack_attr_is_per_selector_and_no_user_frames_option(tmp_path, workload_bin):
    chains = _run(tmp_path, workload_bin,
                  ["-e", "syscalls:sys_enter_kill//stack/,syscalls:sys_enter_getppid", "--no-user-callchain"],
                  wl_args=("kill", "2", "0"))
    assert len(chains) == 2
    for chain in chains:
        assert chain and all(f["kernel"] for f in chain)


def test_no_stack_gives_empty_callchain(tmp_path, workload_bin):
    chains = _run(tmp_path, workload_bin, ["-e", "syscalls:sys_enter_kill"], wl_args=("kill", "2", "0"))
    assert chains == [[], []]
