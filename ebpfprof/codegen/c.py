"""The only ways values enter generated C: identifiers, C fragments, comments, snippets.

Nothing a user typed is pasted into a BPF program. A ``CIdent`` is checked to be an identifier
when it is made; a ``CCode`` is text that one of ebpfprof's own generators emitted (a snippet
from ``bpf/`` after substitution, the filter compiler's output) and can only be made through
``emitted()``, so a plain ``str`` handed to the program generator is refused; comments go
through ``c_comment``. Integers are re-formatted by the generator itself.
"""
from __future__ import annotations

import re
import string
from pathlib import Path

__all__ = ["CIdent", "ident", "CCode", "emitted", "c_comment", "snippet", "snippet_text"]

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SNIPPETS: dict[str, str] = {}
# A snippet's leading /** ... */ block documents it for people who use bpf/ as a library
# (docs/bpf-snippets.md): what it needs, what the verifier asks of the caller, a minimal use.
# It is not pasted: a generated program keeps only the comments that explain its own code.
_LIBRARY_DOC = re.compile(r"\A/\*\*\n.*?\*/\n+", re.S)


class CIdent(str):
    """A C identifier (checked when made)."""

    def __new__(cls, text: str) -> "CIdent":
        if not _IDENT.match(text):
            raise ValueError(f"not a C identifier: {text!r}")
        return super().__new__(cls, text)


def ident(*parts: str) -> CIdent:
    """An identifier from name parts: characters C does not allow become '_'."""
    return CIdent("_".join(re.sub(r"[^A-Za-z0-9_]", "_", p) for p in parts))


_EMITTER = object()


class CCode:
    """C text emitted by one of ebpfprof's generators (see ``emitted``)."""

    __slots__ = ("text",)

    def __init__(self, text: str, _key: object = None) -> None:
        if _key is not _EMITTER:
            raise TypeError("CCode comes from ebpfprof's generators only: use codegen.c.emitted()")
        self.text = text

    def __repr__(self) -> str:
        return f"CCode({self.text[:40]!r}...)"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CCode) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)


def emitted(text: str) -> CCode:
    """Mark text as C written by a generator of ours (never call it on user input)."""
    return CCode(text, _EMITTER)


def c_comment(text: str, limit: int | None = None) -> str:
    """``text`` made safe inside ``/* */``: printable ASCII only (anything else becomes '?'),
    at most ``limit`` characters, and no ``*/`` or ``/*`` left in it."""
    s = "".join(ch if " " <= ch <= "~" else "?" for ch in text)
    if limit is not None and len(s) > limit:
        s = s[:limit - 3] + "..."
    while "*/" in s or "/*" in s:
        s = s.replace("*/", "*\\/").replace("/*", "/\\*")
    return s


def _snippet_dir() -> Path:
    # A source checkout keeps them at the top level (bpf/); an installed wheel inside the package.
    package = Path(__file__).resolve().parent.parent
    for candidate in (package.parent / "bpf", package / "bpf"):
        if (candidate / "prelude.h").is_file():
            return candidate
    raise FileNotFoundError("ebpfprof's BPF snippets (bpf/prelude.h) are missing from the installation")


def snippet_text(name: str) -> str:
    """A file of ``bpf/`` as it is, less its leading ``/**`` library documentation."""
    if name not in _SNIPPETS:
        _SNIPPETS[name] = _LIBRARY_DOC.sub("", (_snippet_dir() / name).read_text(), count=1)
    return _SNIPPETS[name]


def snippet(name: str) -> string.Template:
    """A file of ``bpf/`` as a template: ``${name}`` places are filled by the generator."""
    return string.Template(snippet_text(name))
