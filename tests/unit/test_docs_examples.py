"""The documentation's examples stay true to the code: no kernel or root needed.

- Every ```python block in docs/**/*.md compiles, unless the line before it (blank lines
  aside) is an HTML comment starting with ``<!-- fragment``.
- Every ``ebpfprof python ...`` command line in docs/**/*.md — in fenced blocks, after a
  ``$ `` or ``# `` prompt or at the start of a line, and in inline code — parses with the real
  click command and the real selector parser. Continuation lines (``\\``) are joined; shell
  redirections, pipes, ``&`` and comments end the command. A fenced block preceded by
  ``<!-- error-examples -->`` shows commands that are meant to fail and is not checked.
- Every tool in tools/ compiles, its shebang line parses, its docstring's command line uses the
  same options, and its NAME_example.txt starts with that command line.
"""
from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import click
import pytest

from ebpfprof.cli import cli
from ebpfprof.lang.selector.parser import parse_selectors

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").rglob("*.md"))
TOOLS = sorted((ROOT / "tools").glob("*.py"))

SHELL_OPERATORS = {">", ">>", "<", "|", "||", "&", "&&", ";", "2>&1"}
FENCE = re.compile(r"^(\s*)```(\w*)\s*$")
COMMAND = re.compile(r"^\s*(?:[$#] )?(?:\S*/)?(ebpfprof python\b.*)$")
SHEBANG = re.compile(r"^#!/usr/bin/env -S (ebpfprof python\b.*)$")
INLINE = re.compile(r"`(ebpfprof python [^`]+)`")


@dataclass
class Block:
    path: Path
    line: int            # 1-based line of the opening fence
    lang: str
    text: str
    marker: str          # the HTML comment just before the block, or ""


def blocks(path: Path) -> list[Block]:
    out: list[Block] = []
    lines = path.read_text().splitlines()
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, lang = m.group(1), m.group(2)
        j = i - 1
        while j >= 0 and not lines[j].strip():
            j -= 1
        marker = lines[j].strip() if j >= 0 and lines[j].strip().startswith("<!--") else ""
        body = []
        k = i + 1
        while k < len(lines) and lines[k].strip() != "```":
            body.append(lines[k][len(indent):] if lines[k].startswith(indent) else lines[k])
            k += 1
        out.append(Block(path, i + 1, lang, "\n".join(body) + "\n", marker))
        i = k + 1
    return out


def _join_continuations(text: str) -> list[tuple[int, str]]:
    """(line offset, logical line) with backslash-newline continuations joined."""
    out: list[tuple[int, str]] = []
    pending, start = "", 0
    for n, line in enumerate(text.splitlines()):
        if not pending:
            start = n
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        out.append((start, pending + line))
        pending = ""
    if pending:
        out.append((start, pending))
    return out


def command_lines() -> list[tuple[str, str]]:
    """(where, command text) of every ebpfprof python command in the docs."""
    found: list[tuple[str, str]] = []
    for path in DOCS:
        rel = path.relative_to(ROOT)
        for block in blocks(path):
            if block.marker.startswith("<!-- error-examples"):
                continue
            for offset, line in _join_continuations(block.text):
                where = f"{rel}:{block.line + 1 + offset}"
                m = SHEBANG.match(line)
                if m:
                    found.append((where, m.group(1) + " script.py"))
                    continue
                m = COMMAND.match(line)
                if m and "[OPTIONS]" not in line:
                    found.append((where, m.group(1)))
        in_fence = False
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if FENCE.match(line):
                in_fence = not in_fence
            elif not in_fence:
                found.extend((f"{rel}:{n}", m.group(1)) for m in INLINE.finditer(line))
    return found


def parse_command(text: str) -> click.Context:
    """Parse one `ebpfprof python ...` line like the real CLI does (nothing is run)."""
    tokens = shlex.split(text, comments=True)
    assert tokens[:2] == ["ebpfprof", "python"], text
    args = []
    for tok in tokens[2:]:
        if tok in SHELL_OPERATORS or tok.startswith((">", "2>")):
            break
        args.append(tok)
    command = cli.commands["python"]
    ctx = command.make_context("python", args)
    assert ctx.params["module_and_args"], f"no MODULE in {text!r}"
    for events in ctx.params["events"]:
        parse_selectors(events)
    return ctx


COMMANDS = command_lines()
PYTHON_BLOCKS = [b for path in DOCS for b in blocks(path) if b.lang == "python"]


def test_docs_have_examples():
    """The collectors find what the docs hold (guards against a regex that finds nothing)."""
    assert len(PYTHON_BLOCKS) >= 10
    assert len(COMMANDS) >= 30
    assert any("guide.md" in where for where, _ in COMMANDS)


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: f"{b.path.name}:{b.line}")
def test_python_block_compiles(block: Block):
    if block.marker.startswith("<!-- fragment"):
        pytest.skip("marked as a fragment")
    compile(block.text, f"{block.path}:{block.line}", "exec")


@pytest.mark.parametrize("where,text", COMMANDS, ids=[w for w, _ in COMMANDS])
def test_command_line_parses(where: str, text: str):
    try:
        parse_command(text)
    except (click.ClickException, click.exceptions.Exit) as e:
        pytest.fail(f"{where}: {text!r} does not parse: {e.format_message()}")


def test_parse_command_rejects_what_the_cli_rejects():
    """The checker is the real parser: bad command lines fail it."""
    from ebpfprof.errors import SelectorError

    with pytest.raises(click.BadParameter):
        parse_command("ebpfprof python -e sched:sched_wakeup -m 100 x.py")
    with pytest.raises(click.NoSuchOption):
        parse_command("ebpfprof python -e sched:sched_wakeup x.py --threshold 5")
    with pytest.raises(SelectorError):
        parse_command("ebpfprof python -e 'sched:sched_wakeup//stak/' x.py")
    ctx = parse_command("ebpfprof python -q -e 'a:b/x==1/,c:d' -p 1 t.py arg > out.txt")
    assert ctx.params["module_and_args"] == ("t.py", "arg") and ctx.params["pids"] == (1,)


def test_fragment_marker_is_honoured(tmp_path):
    doc = tmp_path / "x.md"
    doc.write_text("text\n\n<!-- fragment: inside a handler -->\n```python\nif x:\n```\n")
    (block,) = blocks(doc)
    assert block.marker.startswith("<!-- fragment") and block.lang == "python"


@pytest.mark.parametrize("tool", TOOLS, ids=lambda p: p.name)
def test_tool_is_consistent(tool: Path):
    import ast

    source = tool.read_text()
    tree = compile(source, str(tool), "exec", flags=ast.PyCF_ONLY_AST)
    first = source.splitlines()[0]
    assert os.access(tool, os.X_OK), f"{tool.name} has a shebang but no run bit: chmod +x tools/{tool.name}"
    m = SHEBANG.match(first)
    assert m, f"{tool.name}: first line must be '#!/usr/bin/env -S ebpfprof python ...', got {first!r}"
    shebang_ctx = parse_command(m.group(1) + f" tools/{tool.name}")

    doc = ast.get_docstring(tree)
    assert doc, f"{tool.name} needs a module docstring with its command line"
    usage = [line for _, line in _join_continuations(doc) if line.strip().startswith("ebpfprof python")]
    assert usage, f"{tool.name}: the docstring shows no `ebpfprof python ...` command"
    usage_ctx = parse_command(usage[0].strip().replace(" [TOP]", ""))
    assert usage_ctx.params["events"] == shebang_ctx.params["events"], tool.name
    assert usage_ctx.params["interval_ms"] == shebang_ctx.params["interval_ms"], tool.name
    assert usage_ctx.params["module_and_args"][0] == f"tools/{tool.name}"

    example = tool.with_name(tool.stem + "_example.txt")
    assert example.exists(), f"{tool.name} has no {example.name}"
    head = example.read_text().splitlines()[0]
    assert head.startswith("$ ebpfprof python "), f"{example.name} must start with its command line"
    example_ctx = parse_command(head[2:])
    assert example_ctx.params["events"] == shebang_ctx.params["events"], example.name
    assert example_ctx.params["module_and_args"][0] == f"tools/{tool.name}", example.name


def test_the_guides_cython_build_uses_programs_that_are_here():
    """The Cython example's commands name programs this checkout has (cython3 was not)."""
    import shutil

    (block,) = [b for b in blocks(ROOT / "docs" / "guide.md") if "fastcount.pyx -o" in b.text]
    programs = [line[2:].split()[0] for _, line in _join_continuations(block.text)
                if line.startswith("# ") and not line.startswith(("# ebpfprof ", "# cat ", "# fastcount"))]
    assert len(programs) == 2, programs
    for program in programs:
        found = (ROOT / program).exists() if "/" in program else shutil.which(program)
        assert found, f"docs/guide.md builds with {program}, which is not installed here"


# -- links ------------------------------------------------------------------------------------
LINKED_DOCS = [ROOT / "docs" / n for n in ("guide.md", "selectors.md", "perfevent.md", "profilers.md",
                                           "probes.md", "bpf-snippets.md", "python-callchain.md")] + \
    sorted((ROOT / "docs" / "ops").glob("*.md"))
LINK = re.compile(r"\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path: Path) -> set[str]:
    out, in_fence = set(), False
    for line in path.read_text().splitlines():
        if FENCE.match(line):
            in_fence = not in_fence
        elif not in_fence and line.startswith("#"):
            out.add(_slug(line.lstrip("#")))
    return out


@pytest.mark.parametrize("doc", LINKED_DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_links_resolve(doc: Path):
    """Relative links point at files that exist, and #anchors at headings that exist."""
    for target in LINK.findall(doc.read_text()):
        if "://" in target:
            continue
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        assert dest.exists(), f"{doc.name}: link to missing {target}"
        if anchor and dest.suffix == ".md":
            assert anchor in _anchors(dest), f"{doc.name}: no heading for #{anchor} in {dest.name}"
