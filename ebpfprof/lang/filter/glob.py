"""Glob patterns → minimal DFAs over bytes, built at compile time.

The kernel side cannot backtrack, and a BPF loop must be bounded, so a glob is turned into a
deterministic automaton here, in Python, and the C side only steps through it one byte at a time.

Syntax (the shell's and Python's ``fnmatch``; the whole string must match)::

    *        any run of bytes, including none
    ?        exactly one byte (a non-ASCII character is several bytes)
    [abc]    one byte of the set; ranges: [a-z0-9]; a ']' first in the set is literal: []x]
    [!abc]   one byte not in the set; [^abc] means the same
    other    itself; a '[' with no closing ']' is literal; '\\' has no special meaning:
             match a literal '*', '?' or '[' with a set: [*]

>>> dfa = compile_glob(b"*/tru?")
>>> dfa.matches(b"/bin/true"), dfa.matches(b"/bin/truth"), dfa.matches(b"/bin/tru")
(True, False, False)
"""
from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GlobTooComplex", "Dfa", "parse_glob", "compile_glob", "MAX_STATES", "MAX_TABLE"]

# The kernel side keeps a table of (states × byte classes) bytes per CPU and writes it once; these
# bound it. The verifier's cost does not depend on them (about 4k instructions per glob, measured).
MAX_STATES = 160   # a state is a byte in the kernel's table: keep below 256
MAX_TABLE = 8192

_ALL_BYTES = frozenset(range(256))


class GlobTooComplex(ValueError):
    """The glob's DFA would exceed ``MAX_STATES`` states or ``MAX_TABLE`` table cells."""


# A parsed glob is a list of elements: STAR, or the set of bytes that one position accepts.
STAR = None


def _parse_set(pat: bytes, i: int) -> tuple[frozenset[int], int] | None:
    """Parse the set that opens at ``pat[i - 1] == '['``; its bytes and the index after ']'.

    None when there is no closing ']' (the '[' is then an ordinary byte, as in fnmatch).
    """
    n = len(pat)
    j = i
    negate = j < n and pat[j] in b"!^"
    if negate:
        j += 1
    body_start = j
    # A ']' right after '[' or '[!' belongs to the set.
    if j < n and pat[j] == ord("]"):
        j += 1
    while j < n and pat[j] != ord("]"):
        j += 1
    if j >= n:
        return None
    body = pat[body_start:j]
    members: set[int] = set()
    k = 0
    while k < len(body):
        lo = body[k]
        # 'x-y' is a range when '-' has a byte after it inside the set; '-' first or last is literal.
        if k + 2 < len(body) and body[k + 1] == ord("-"):
            hi = body[k + 2]
            members.update(range(lo, hi + 1))  # empty when lo > hi, as in fnmatch
            k += 3
        else:
            members.add(lo)
            k += 1
    chosen = _ALL_BYTES - members if negate else frozenset(members)
    return chosen, j + 1


def parse_glob(pat: bytes) -> list[frozenset[int] | None]:
    """The glob as a list of elements: ``None`` for ``*``, else the set of bytes one position takes."""
    out: list[frozenset[int] | None] = []
    i, n = 0, len(pat)
    while i < n:
        c = pat[i]
        i += 1
        if c == ord("*"):
            if not out or out[-1] is not STAR:  # '**' means '*'
                out.append(STAR)
        elif c == ord("?"):
            out.append(_ALL_BYTES)
        elif c == ord("["):
            parsed = _parse_set(pat, i)
            if parsed is None:
                out.append(frozenset({c}))
            else:
                members, i = parsed
                out.append(members)
        else:
            out.append(frozenset({c}))
    return out


@dataclass(frozen=True)
class Dfa:
    """A minimal DFA over bytes.

    ``delta[s][b]`` is the state after byte ``b`` in state ``s``. ``dead`` is the rejecting state
    that nothing leaves and ``accept_all`` the accepting one that nothing leaves (None if absent):
    once in either, the answer is known without reading further — which is what lets a string
    longer than the kernel's cap still be decided.

    ``classes`` groups bytes 1..255 that every state treats alike, largest group first; strings
    hold no NUL, so byte 0 is in none. The kernel side indexes its table by class, not by byte.
    States are numbered dead first (if there is one), accepting last.
    """

    start: int
    delta: tuple[tuple[int, ...], ...]
    accepting: frozenset[int]
    dead: int | None
    accept_all: int | None
    classes: tuple[tuple[int, ...], ...]

    @property
    def num_states(self) -> int:
        return len(self.delta)

    def run(self, data: bytes, state: int | None = None) -> int:
        s = self.start if state is None else state
        for b in data:
            s = self.delta[s][b]
        return s

    def matches(self, data: bytes) -> bool:
        return self.run(data) in self.accepting

    @property
    def table_cells(self) -> int:
        """Cells of the kernel's transition table: states × classes, rounded up to a power of two
        so that masking an index is enough for the verifier to see it in bounds."""
        return 1 << (self.num_states * len(self.classes) - 1).bit_length()

    @property
    def first_accepting(self) -> int:
        """Accepting states are exactly those numbered from this one on."""
        return min(self.accepting, default=self.num_states)


def _closure(elements: list[frozenset[int] | None], positions: set[int]) -> frozenset[int]:
    # A star may match nothing, so being before it is also being after it.
    out = set()
    for p in positions:
        while True:
            out.add(p)
            if p < len(elements) and elements[p] is STAR:
                p += 1
            else:
                break
    return frozenset(out)


def _alphabet(elements: list[frozenset[int] | None]) -> list[list[int]]:
    """Bytes 0..255 grouped by which of the glob's sets hold them: they all step alike."""
    sets = sorted({e for e in elements if e is not STAR}, key=sorted)
    groups: dict[tuple[bool, ...], list[int]] = {}
    for b in range(256):
        groups.setdefault(tuple(b in e for e in sets), []).append(b)
    return list(groups.values())


def _subset_construction(elements: list[frozenset[int] | None], limit: int):
    end = len(elements)
    alphabet = _alphabet(elements)
    start = _closure(elements, {0})
    index = {start: 0}
    order = [start]
    delta: list[list[int]] = []
    i = 0
    while i < len(order):
        current = order[i]
        i += 1
        row = []
        for group in alphabet:
            b = group[0]  # any member stands for the whole group
            nxt = set()
            for p in current:
                if p == end:
                    continue
                e = elements[p]
                if e is STAR:
                    nxt.add(p)
                elif b in e:
                    nxt.add(p + 1)
            target = _closure(elements, nxt)
            if target not in index:
                if len(order) >= limit:
                    raise GlobTooComplex(f"more than {limit} DFA states")
                index[target] = len(order)
                order.append(target)
            row.append(index[target])
        delta.append(row)
    accepting = {index[s] for s in order if end in s}
    return alphabet, delta, accepting


def _minimize(delta: list[list[int]], accepting: set[int]) -> tuple[list[list[int]], set[int], int]:
    """Moore's partition refinement; returns the new table, accepting set and start (0)."""
    n = len(delta)
    block = [1 if s in accepting else 0 for s in range(n)]
    while True:
        signatures: dict[tuple, int] = {}
        new_block = []
        for s in range(n):
            sig = (block[s], tuple(block[t] for t in delta[s]))
            new_block.append(signatures.setdefault(sig, len(signatures)))
        if len(signatures) == len(set(block)):
            break
        block = new_block
    # Renumber so the start state is 0 and numbering follows first appearance (stable output).
    renumber: dict[int, int] = {}
    queue = [0]
    renumber[block[0]] = 0
    reps: dict[int, int] = {block[0]: 0}
    qi = 0
    while qi < len(queue):
        s = queue[qi]
        qi += 1
        for t in delta[s]:
            if block[t] not in renumber:
                renumber[block[t]] = len(renumber)
                reps[block[t]] = t
                queue.append(t)
    new_delta = [[] for _ in range(len(renumber))]
    for b_id, rep in reps.items():
        new_delta[renumber[b_id]] = [renumber[block[t]] for t in delta[rep]]
    new_accepting = {renumber[block[s]] for s in accepting if block[s] in renumber}
    return new_delta, new_accepting, 0


def compile_glob(pat: bytes, *, max_states: int = MAX_STATES) -> Dfa:
    """Compile a glob to a minimal DFA; raises ``GlobTooComplex`` past ``max_states`` states."""
    elements = parse_glob(pat)
    # The unminimized DFA may be a little larger than the minimal one: allow it some room.
    alphabet, by_group, accepting = _subset_construction(elements, limit=2 * max_states + 8)
    by_group, accepting, start = _minimize(by_group, accepting)
    delta = []
    for group_row in by_group:
        row = [0] * 256
        for group, target in zip(alphabet, group_row):
            for b in group:
                row[b] = target
        delta.append(row)
    if len(delta) > max_states:
        raise GlobTooComplex(f"{len(delta)} DFA states (at most {max_states})")
    dead = accept_all = None
    for s, row in enumerate(delta):
        # Strings never hold a NUL, so byte 0 does not decide whether a state is a trap.
        if all(t == s for t in row[1:]):
            if s in accepting:
                accept_all = s
            else:
                dead = s
    # Renumber: the dead state first, then the other rejecting states, then the accepting ones.
    # Most transitions lead to the dead state and the kernel's table starts zeroed, so they need
    # no stores; and "accepting" becomes a single comparison, state >= first accepting.
    order = sorted(range(len(delta)), key=lambda s: (s != dead, s in accepting, s))
    new = {old: i for i, old in enumerate(order)}
    delta = [[new[t] for t in delta[old]] for old in order]
    start = new[start]
    accepting = {new[s] for s in accepting}
    dead = None if dead is None else new[dead]
    accept_all = None if accept_all is None else new[accept_all]
    groups: dict[tuple[int, ...], list[int]] = {}
    for b in range(1, 256):
        groups.setdefault(tuple(row[b] for row in delta), []).append(b)
    classes = tuple(tuple(g) for g in sorted(groups.values(), key=lambda g: (-len(g), g[0])))
    if len(delta) * len(classes) > MAX_TABLE:
        raise GlobTooComplex(f"a table of {len(delta)} states × {len(classes)} byte classes "
                             f"(at most {MAX_TABLE} cells)")
    return Dfa(start, tuple(tuple(r) for r in delta), frozenset(accepting), dead, accept_all,
               classes)
