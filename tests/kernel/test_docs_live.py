"""The docs' example runs, on live events, print what the docs show (numbers of the moment aside)."""
from __future__ import annotations

import re
import subprocess
import time

from runner import ROOT, Tracer, write_script


def doc_blocks(path, after: str) -> list[str]:
    """The fenced blocks of a doc after the heading AFTER, in order."""
    text = (ROOT / path).read_text()
    text = text[text.index(after):]
    return re.findall(r"^```\w*\n(.*?)^```$", text, re.M | re.S)


def test_perfevent_tour_prints_what_the_doc_shows(tmp_path):
    script_text, shown = doc_blocks("docs/perfevent.md", "### A tour")[:2]
    script = write_script(tmp_path, script_text, "tour.py")
    # the doc runs it with -q; Tracer's -v (to know when it is attached) adds the Loaded line
    tracer = Tracer(["-e", "sched:sched_process_exec", str(script)])
    try:
        tracer.wait_attached()
        subprocess.run(["/bin/true"], check=True)
        time.sleep(0.5)
        tracer.signal(2)
        assert tracer.wait() == 0, tracer.stderr
    finally:
        if tracer.proc.poll() is None:
            tracer.proc.kill()
    loaded, _, got = tracer.stdout.partition("\n")
    assert loaded == f"Loaded module: {script}"
    m = re.match(r"<PerfEvent sched:sched_process_exec cpu=(\d+) pid=(\d+) time=(\d+)>\n"
                 r"sched:sched_process_exec \d+ \d+ \d+ \d+ 1 (\d+)\n", got)
    assert m, got
    cpu, pid, t, real = m.groups()
    common_type = re.search(r"'common_type': (\d+)", got).group(1)
    # The doc's run, with this run's numbers put in
    # print()'s pid column is 6 wide: " 21436" is the doc's pid padded, so keep the padding
    expected = (shown.replace(" 21436 X", f"{int(pid):6d} X").replace("21436", pid)
                .replace("3739418852532", t).replace("1795679891735513327", real)
                .replace("cpu=0 ", f"cpu={cpu} ").replace("'_cpu': 0,", f"'_cpu': {cpu},")
                .replace(f"exec {pid} {pid} 0 ", f"exec {pid} {pid} {cpu} ")
                .replace("[000]", f"[{int(cpu):03d}]").replace("365", common_type)
                .replace("3739.418852", f"{int(t) // 10**9}.{int(t) // 1000 % 10**6:06d}"))
    date = re.search(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6}) ", got, re.M).group(1)
    expected = expected.replace("2026-11-26 07:58:11.735513", date)
    assert got == expected
