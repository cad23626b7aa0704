"""bench/RESULTS.md in sections: each bench script rewrites its own, and keeps the others.

The file is the head (`bench/run.py`'s figures, up to the first `## ` heading) and then `## `
sections (`bench/startstop.py`'s, `make soak`'s, `bench/profilers.py`'s, `bench/probes.py`'s, notes).
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"


def machine() -> str:
    """'vm, Linux 6.18..., 2 CPUs (AMD EPYC ...), Python 3.11.2' for a Machine: line."""
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{platform.node()}, Linux {platform.release()}, {os.cpu_count()} CPUs ({cpu}), "
            f"Python {platform.python_version()}")


def _split(text: str) -> tuple[str, list[str]]:
    """(head, sections): each section starts at a line beginning with '## '."""
    lines = text.splitlines(keepends=True)
    head: list[str] = []
    sections: list[list[str]] = []
    for line in lines:
        if line.startswith("## "):
            sections.append([line])
        elif sections:
            sections[-1].append(line)
        else:
            head.append(line)
    return "".join(head), ["".join(s) for s in sections]


def _join(head: str, sections: list[str]) -> str:
    parts = [head.rstrip("\n") + "\n"] if head.strip() else []
    parts += [s.rstrip("\n") + "\n" for s in sections]
    return "\n".join(parts)


def write_head(text: str) -> None:
    """Replace the head (everything before the first '## ' heading); keep every section."""
    _head, sections = _split(RESULTS.read_text() if RESULTS.exists() else "")
    RESULTS.write_text(_join(text, sections))


def write_section(heading_prefix: str, text: str) -> None:
    """Replace the section whose heading starts with heading_prefix by text (which starts with
    its own '## ' heading), or add it at the end."""
    assert text.startswith("## ") and heading_prefix.startswith("## "), (heading_prefix, text[:20])
    head, sections = _split(RESULTS.read_text() if RESULTS.exists() else "")
    for i, s in enumerate(sections):
        if s.startswith(heading_prefix):
            sections[i] = text
            break
    else:
        sections.append(text)
    RESULTS.write_text(_join(head, sections))
